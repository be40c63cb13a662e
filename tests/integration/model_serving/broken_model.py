"""A pyfunc model that loads fine and fails every prediction: the promotion that must be refused."""

import mlflow.pyfunc


class BrokenModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("this model version is deliberately broken")
