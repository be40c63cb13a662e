"""Registers NAME (a logistic regression on iris, with an input example) and points its alias champion at it."""

import sys

import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

name = sys.argv[1]
X, y = load_iris(return_X_y=True, as_frame=True)
mlflow.set_experiment(name)
with mlflow.start_run():
    info = mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, y), name="model",
                                    input_example=X.head(2), registered_model_name=name)
mlflow.MlflowClient().set_registered_model_alias(name, "champion", info.registered_model_version)
