"""Agents tests never reach a model provider: only FunctionModel / TestModel."""

from pydantic_ai import models

models.ALLOW_MODEL_REQUESTS = False
