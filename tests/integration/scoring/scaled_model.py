"""A pyfunc PythonModel with a signature and a param: the second flavor of the scoring server's compatibility test."""

import mlflow.pyfunc
import pandas as pd


class ScaledSum(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        factor = (params or {}).get("factor", 1.0)
        return pd.DataFrame({"score": (model_input["a"] * 2 + model_input["b"]) * factor,
                             "label": model_input["name"].str.upper()})
