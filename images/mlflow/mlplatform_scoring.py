"""The model server of the serving image: one MLflow model behind the HTTP API of `mlflow models serve`, faster.

    python -m mlplatform_scoring --model-uri models:/iris@champion --port 8080 --metrics-port 9090

What it answers is MLflow's: `/invocations` (JSON `dataframe_split`, `dataframe_records`, `instances`, `inputs`,
`params`; CSV; Parquet), `/ping`, `/health` and `/version`, with the responses and status codes of MLflow's own
scoring server, because every request that is not on the fast path below, and every request of a batch that failed,
is answered by MLflow's own `invocations()` function, unchanged.

What it adds:
- Adaptive batching. Requests that arrive while a prediction runs wait for it, then go into one `predict` call
  together, with those already received when it starts (at most --max-batch-size requests; --max-batch-wait-ms
  holds an idle server's first request that long for company, 0 by default). A request joins a batch when it is
  JSON with exactly one `dataframe_split` (same columns, no index) or `dataframe_records` key and no params; its rows
  are parsed with MLflow's own parser in one frame with the others' (or, when the signature's columns are all
  `double` and the rows are the signature's columns of JSON floats, made into the very frame that parser would
  make, directly), predicted once with MLflow's `predict` (schema enforcement included), and the predictions are
  split back by row counts. If that batch fails anywhere (parsing, schema, the model), or the model does not return
  one prediction per row, each of its requests is answered alone, so a request whose rows fail gets exactly its own
  error and the others their predictions.
  --max-batch-size 1 turns batching off (for models whose output for a row depends on the other rows).
- A lean stack: a plain ASGI application on uvicorn (uvloop and httptools when installed), request bodies parsed
  with orjson, no access log, the model loaded once and shared by the workers (forked after loading).
- Prometheus metrics on their own port (--metrics-port; not on the serving port, so not through an ingress):
  mlplatform_serving_requests_total{model,version,status}, ..._request_duration_seconds{model,version} (histogram)
  of /invocations, and ..._batch_size{model,version} (histogram: requests per predict call).
- Graceful shutdown: SIGTERM stops accepting connections, answers every request already received, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger("mlplatform_scoring")
JSON = "application/json"
# What a path (or method) of no route answers, as FastAPI (MLflow's server) answers it.
NOT_FOUND = (404, JSON, b'{"detail":"Not Found"}')
METHOD_NOT_ALLOWED = (405, JSON, b'{"detail":"Method Not Allowed"}')
INTERNAL_ERROR = (500, "text/plain; charset=utf-8", b"Internal Server Error")
TIMED_OUT = (504, JSON, b"Request processing time exceeded limit")
# Turns of the event loop a batch waits for requests already received: the I/O poll that reads them, and the steps
# of their tasks up to the queue (3 with uvloop, 4 with asyncio's own loop; measured).
DRAIN_TURNS = 4
ROUTES = {"/invocations": "POST", "/ping": "GET", "/health": "GET", "/version": "GET"}


@dataclass(frozen=True)
class Settings:
    model_uri: str
    host: str = "0.0.0.0"
    port: int = 8080
    metrics_port: int = 0  # 0: no metrics endpoint
    workers: int = 1
    timeout: float = 60.0
    max_batch_size: int = 32
    max_batch_wait: float = 0.0  # seconds
    path_prefix: str = ""  # "/iris": /iris/invocations is /invocations (an ingress path, forwarded unchanged)
    model_name: str = ""
    model_version: str = ""


# ------------------------------------------------------------------------------------------ batchable requests --

@dataclass
class Job:
    """One /invocations request: its body as received, and what the fast path made of it (key None: answer alone)."""

    body: bytes
    content_type: str | None
    key: tuple | None = None
    rows: list | None = None
    future: asyncio.Future | None = field(default=None, repr=False)


def batch_key(body: bytes, content_type: str | None) -> tuple[tuple | None, list | None]:
    """(key, rows) of a request that may share a predict call with others of the same key, else (None, None).

    Only the plainest requests qualify; anything else (CSV, params, an index, LLM-style payloads, values orjson
    reads differently from Python's json, such as NaN) goes to MLflow's own code alone.
    """
    import orjson

    if content_type is None or content_type.split(";")[0].strip() != JSON:
        return None, None
    if ";" in content_type and content_type.split(";", 1)[1].strip().lower() not in ("charset=utf-8", ""):
        return None, None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(payload, dict) or len(payload) != 1:
        return None, None
    ((name, value),) = payload.items()
    if name == "dataframe_split":
        if (isinstance(value, dict) and value.keys() == {"columns", "data"} and isinstance(value["data"], list)
                and isinstance(value["columns"], list) and all(isinstance(c, str) for c in value["columns"])
                and all(isinstance(row, list) and len(row) == len(value["columns"]) for row in value["data"])
                and value["data"]):
            return ("split", tuple(value["columns"])), value["data"]
    elif (name == "dataframe_records" and isinstance(value, list) and value
          and all(isinstance(record, dict) for record in value)):
        return ("records",), value
    return None, None


def merged_payload(key: tuple, jobs: list[Job]) -> dict:
    """The one request body (as parsed JSON) that holds the rows of every job, in order."""
    rows = [row for job in jobs for row in job.rows]
    if key[0] == "split":
        return {"dataframe_split": {"columns": list(key[1]), "data": rows}}
    return {"dataframe_records": rows}


def double_columns(schema) -> tuple[str, ...] | None:
    """The names of a signature whose inputs are all required, named `double` columns, in order; else None."""
    from mlflow.types.schema import ColSpec, DataType

    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    if not all(isinstance(spec, ColSpec) and spec.type == DataType.double and spec.required
               for spec in schema.inputs):
        return None
    return tuple(schema.input_names())


def float_frame(columns: tuple[str, ...] | None, key: tuple, jobs: list[Job]):
    """The DataFrame MLflow's parser makes of the jobs' rows, built directly, when that is plainly the same; else None.

    Only for a signature of `double` columns (`columns`), rows that name exactly those columns in that order, and
    values that are all JSON floats: MLflow's parser then makes float64 columns holding those very values (its cast
    to the schema's types changes nothing), and this makes them from one numpy array instead of column by column.
    """
    import numpy as np
    import pandas as pd

    if columns is None:
        return None
    if key[0] == "split":
        if key[1] != columns:
            return None
        rows = [row for job in jobs for row in job.rows]
    else:
        rows = []
        for job in jobs:
            for record in job.rows:
                if tuple(record) != columns:
                    return None
                rows.append(list(record.values()))
    if not all(type(value) is float for row in rows for value in row):  # not int, bool, None, str
        return None
    return pd.DataFrame(np.array(rows, dtype=np.float64), columns=list(columns))


# -------------------------------------------------------------------------------------------------- the model --

class Model:
    """The loaded model and MLflow's own request handling around it (the code `mlflow models serve` runs)."""

    def __init__(self, model_uri: str) -> None:
        from mlflow.pyfunc import scoring_server

        self.scoring = scoring_server
        self.pyfunc = scoring_server.load_model_with_mlflow_config(model_uri)
        self.input_schema = self.pyfunc.metadata.get_input_schema()
        # A signature from type hints takes `inputs` as they are: nothing for the fast path's parser to do.
        from_type_hint = getattr(self.pyfunc.metadata, "_is_signature_from_type_hint", lambda: False)()
        self.batchable = not from_type_hint
        self.double_columns = double_columns(self.input_schema)

    def answer_alone(self, job: Job) -> tuple[int, str, bytes]:
        """MLflow's response to this one request, as its scoring server would give it."""
        from mlflow.exceptions import MlflowException

        try:
            result = self.scoring.invocations(job.body, job.content_type, self.pyfunc, self.input_schema)
        except MlflowException as error:
            return error.get_http_status_code(), JSON, error.serialize_as_json().encode()
        except Exception:  # what FastAPI answers for an error MLflow's code does not handle
            LOG.exception("request failed")
            return INTERNAL_ERROR
        return result.status, result.mimetype, result.response.encode()

    def answer_together(self, key: tuple, jobs: list[Job]) -> list[tuple[int, str, bytes]]:
        """One predict call for the rows of all jobs, split back; any failure answers each job alone."""
        from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

        try:
            frame = float_frame(self.double_columns, key, jobs)
            if frame is None:
                frame = self.scoring.infer_and_parse_data(merged_payload(key, jobs), self.input_schema)
            predictions = _get_jsonable_obj(self.pyfunc.predict(frame), pandas_orient="records")
        except Exception:  # noqa: BLE001 - each request then gets exactly its own answer (or error)
            predictions = None
        counts = [len(job.rows) for job in jobs]
        if not isinstance(predictions, list) or len(predictions) != sum(counts):
            return [self.answer_alone(job) for job in jobs]
        answers, start = [], 0
        encode = NumpyEncoder().encode  # what json.dumps(..., cls=NumpyEncoder) does, without a new encoder per call
        for count in counts:
            body = encode({"predictions": predictions[start:start + count]}).encode()
            answers.append((200, JSON, body))
            start += count
        return answers

    def answer(self, jobs: list[Job]) -> list[tuple[int, str, bytes]]:
        """The answers to jobs taken together (runs in the predict thread)."""
        groups: dict[tuple, list[int]] = {}
        answers: list[Any] = [None] * len(jobs)
        for index, job in enumerate(jobs):
            if job.key is None:
                answers[index] = self.answer_alone(job)
            else:
                groups.setdefault(job.key, []).append(index)
        for key, indexes in groups.items():
            together = self.answer_together(key, [jobs[i] for i in indexes])
            for index, answer in zip(indexes, together, strict=True):
                answers[index] = answer
        return answers


class Batcher:
    """Queues requests and feeds them to one predict thread, as many together as arrived while it was busy."""

    def __init__(self, model: Model, settings: Settings, batch_sizes) -> None:
        self.model = model
        self.max_size = settings.max_batch_size
        self.max_wait = settings.max_batch_wait
        self.batch_sizes = batch_sizes
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def submit(self, job: Job, timeout: float) -> tuple[int, str, bytes]:
        """The answer to the job, or TIMED_OUT after `timeout` seconds (a timer, not a task per request)."""
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        timer = loop.call_later(timeout, expire, job.future)
        self.queue.put_nowait(job)
        try:
            return await job.future
        finally:
            timer.cancel()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            drained = False
            while len(jobs) < self.max_size:
                if not self.queue.empty():
                    jobs.append(self.queue.get_nowait())
                elif self.max_wait and loop.time() < deadline:
                    try:
                        jobs.append(await asyncio.wait_for(self.queue.get(), deadline - loop.time()))
                    except TimeoutError:
                        break
                elif not drained:
                    # Requests already received on other connections join this batch: a few turns of the event loop,
                    # no waiting beyond them. Without them, a batch leaves at its first request and the requests
                    # answered with the last batch form the next one: many batches of one.
                    for _ in range(DRAIN_TURNS):
                        await asyncio.sleep(0)
                    drained = True
                else:
                    break
            jobs = [job for job in jobs if not job.future.done()]  # drop those that timed out waiting
            if not jobs:
                continue
            self.batch_sizes.observe(len(jobs))
            try:
                answers = await loop.run_in_executor(self.thread, self.model.answer, jobs)
            except Exception:  # never lose the loop; the requests get a 500
                LOG.exception("batch failed")
                answers = [INTERNAL_ERROR] * len(jobs)
            for job, answer in zip(jobs, answers, strict=True):
                if not job.future.done():
                    job.future.set_result(answer)


def expire(future: asyncio.Future) -> None:
    """A request's timer ran out: it is answered TIMED_OUT, and its batch (if any) will not answer it."""
    if not future.done():
        future.set_result(TIMED_OUT)


# ----------------------------------------------------------------------------------------------- the ASGI app --

class App:
    """A plain ASGI application: four routes, no framework in the request path."""

    def __init__(self, model: Model, settings: Settings) -> None:
        from mlflow.version import VERSION
        from prometheus_client import Counter, Histogram

        self.model = model
        self.settings = settings
        self.version = VERSION.encode()
        labels = {"model": settings.model_name, "version": settings.model_version}
        self.requests = Counter("mlplatform_serving_requests", "Prediction requests answered, by HTTP status.",
                                ["model", "version", "status"])
        self.request_labels = labels
        self.counters: dict[int, Any] = {}  # the counter of each status
        self.duration = Histogram(
            "mlplatform_serving_request_duration_seconds", "Time from request received to response sent.",
            ["model", "version"],
            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)).labels(**labels)
        self.batch_sizes = Histogram(
            "mlplatform_serving_batch_size", "Requests answered by one predict call.", ["model", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)).labels(**labels)
        self.batcher: Batcher | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        status, content_type, body = await self.respond(scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        if scope["path"].endswith("/invocations"):  # predictions only, not the kubelet's probes
            counter = self.counters.get(status)
            if counter is None:
                counter = self.counters[status] = self.requests.labels(status=str(status), **self.request_labels)
            counter.inc()
            self.duration.observe(time.perf_counter() - started)

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.batcher = Batcher(self.model, self.settings, self.batch_sizes)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.batcher:
                    self.batcher.thread.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def respond(self, scope, receive) -> tuple[int, str, bytes]:
        path = scope["path"]
        prefix = self.settings.path_prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix):] or "/"
        method = ROUTES.get(path)
        if method is None:
            return NOT_FOUND
        if scope["method"] != method:
            return METHOD_NOT_ALLOWED
        if path == "/version":
            return 200, JSON, self.version
        if path != "/invocations":
            return 200, JSON, b"\n"  # /ping, /health: the model is loaded, or this process would not run
        body = await read_body(receive)
        content_type = header(scope, b"content-type")
        key, rows = batch_key(body, content_type) if self.model.batchable else (None, None)
        job = Job(body, content_type, key, rows)
        return await self.batcher.submit(job, self.settings.timeout)


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


# --------------------------------------------------------------------------------------------------- processes --

def serve(app: App, settings: Settings, sock: socket.socket) -> None:
    """Run uvicorn on an already bound socket until SIGTERM/SIGINT, then drain (uvicorn's graceful shutdown)."""
    import importlib.util

    import uvicorn

    config = uvicorn.Config(
        app, lifespan="on", access_log=False, log_level="warning", proxy_headers=False,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        # Idle keep-alive connections outlive the proxies' (Traefik 90 s, GKE's load balancer 600 s), so a proxy never
        # sends a request on a connection this server has just closed.
        timeout_graceful_shutdown=int(settings.timeout) + 5, timeout_keep_alive=620)
    uvicorn.Server(config).run(sockets=[sock])


def start_metrics(port: int) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, registry=registry)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Metrics from every worker process, summed by the collector (set before prometheus_client is imported).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="metrics-"))
    os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] = "true"  # what MLflow's scoring server sets, too
    started = time.monotonic()
    model = Model(settings.model_uri)
    LOG.info("loaded %s in %.1f s; %d worker(s), batches of up to %d", settings.model_uri,
             time.monotonic() - started, settings.workers, settings.max_batch_size)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a response's second write must not wait for the client's delayed ACK (a
    # 40 ms stall per request on keep-alive connections).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    if settings.workers == 1:
        if settings.metrics_port:
            start_metrics(settings.metrics_port)
        serve(App(model, settings), settings, sock)
        return 0
    return supervise(model, settings, sock)


def supervise(model: Model, settings: Settings, sock: socket.socket) -> int:
    """Fork the workers (they share the loaded model), serve metrics, pass SIGTERM on, and wait for all of them.

    A worker that exits on its own ends the container (exit 1), so Kubernetes restarts it: no half-served pod.
    """
    import gc

    from prometheus_client import multiprocess

    gc.freeze()  # keep the model's pages shared with the workers (copy-on-write)
    children = set()
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            serve(App(model, settings), settings, sock)
            os._exit(0)
        children.add(pid)
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        for child in children:
            os.kill(child, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if settings.metrics_port:
        start_metrics(settings.metrics_port)
    code = 0
    while children:
        pid, status = os.wait()
        children.discard(pid)
        multiprocess.mark_process_dead(pid)
        if not stopping:
            LOG.error("worker %d exited (status %d): stopping", pid, status)
            stop(signal.SIGTERM, None)
            code = 1
    return code


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="mlplatform_scoring", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--metrics-port", type=int, default=0, help="0: no metrics endpoint")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request, then 504")
    parser.add_argument("--max-batch-size", type=int, default=32, help="1: no batching")
    parser.add_argument("--max-batch-wait-ms", type=float, default=0.0)
    parser.add_argument("--path-prefix", default="", help="also answer under this path (an ingress path)")
    parser.add_argument("--model-name", default="")
    parser.add_argument("--model-version", default="")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.max_batch_size < 1 or args.timeout <= 0 or args.max_batch_wait_ms < 0:
        parser.error("--workers and --max-batch-size must be at least 1, --timeout above 0, the wait not negative")
    prefix = args.path_prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        parser.error("--path-prefix must start with /")
    return Settings(model_uri=args.model_uri, host=args.host, port=args.port, metrics_port=args.metrics_port,
                    workers=args.workers, timeout=args.timeout, max_batch_size=args.max_batch_size,
                    max_batch_wait=args.max_batch_wait_ms / 1000, path_prefix=prefix,
                    model_name=args.model_name, model_version=args.model_version)


if __name__ == "__main__":
    sys.exit(main())
