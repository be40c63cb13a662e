"""Pyfunc models that load fine and then fail: promotions that must be refused or rolled back."""

import mlflow.pyfunc


class BrokenModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("this model version is deliberately broken")


class FlakyModel(mlflow.pyfunc.PythonModel):
    """Answers its first predictions (the smoke tests), then fails about half of them with a server error (500):
    the canary the analysis must roll back."""

    calls = 0

    def predict(self, context, model_input, params=None):
        import random

        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

        FlakyModel.calls += 1
        if FlakyModel.calls > 3 and random.random() < 0.5:
            raise MlflowException("this model version fails half of its predictions", error_code=INTERNAL_ERROR)
        return [20] * len(model_input)
