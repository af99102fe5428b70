"""Scripted model functions for FunctionModel: a fixed structured answer, or a provider error."""

from collections.abc import Callable
from typing import Any

from pydantic_ai import ModelResponse, ToolCallPart
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo
from pydantic_ai.usage import RequestUsage

ModelFunction = Callable[[list[ModelMessage], AgentInfo], ModelResponse]


def answering(args: dict[str, Any], tokens: int = 120) -> ModelFunction:
    """Always answer with ``args`` as the structured output, using ``tokens`` input tokens."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(
            parts=[ToolCallPart(info.output_tools[0].name, args)],
            usage=RequestUsage(input_tokens=tokens, output_tokens=20),
        )

    return respond


def failing(status: int) -> ModelFunction:
    """Always fail the way a provider does (ModelHTTPError with ``status``)."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(status, "scripted", b"provider unavailable")

    return respond
