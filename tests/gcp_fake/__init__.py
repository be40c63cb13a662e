"""A stateful, discovery-checked fake of the Google control-plane APIs used by mlplatform.mlflow (tests only)."""

from gcp_fake.server import FakeGoogle, Fault, Logged

__all__ = ["FakeGoogle", "Fault", "Logged"]
