"""The HTTP API (FastAPI): predictions per task, the task list, health, adding and removing tasks.

* ``POST /v1/{task}/predict`` ``{"inputs": [...]}``: each input is an object with the task's fields (as a line
  of its JSON-lines files, labels not needed) or a string (the plain-text form of `deepprompt-predict`: fields
  separated by tabs). Answers come back in order, as `deepprompt-predict` writes them.
* ``GET /v1/tasks``: the backbone and each task's family, labels, prompt length and sizes.
* ``POST /v1/tasks`` ``{"name", "path"}`` / ``DELETE /v1/tasks/{name}``: load or drop a task's prompts while
  the backbone stays in memory.
* ``GET /health``: the batcher's counters, the graphs' and the shape buckets' (padded, warmed, timed); the
  OpenAPI schema at ``/openapi.json`` (and ``/docs``).

Errors: a malformed request or input is HTTP 422 whose ``detail`` names the field (``loc``); an unknown
task is 404 listing the served tasks.
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.routing import request_response

from deepprompt.errors import DeepPromptError
from deepprompt.inference.inputs import example_from_fields, fields_from_text
from deepprompt.serve.batcher import Batcher
from deepprompt.serve.registry import TaskRegistry

TASK_NAME = r"^[A-Za-z0-9_\-]{1,64}$"


class PredictRequest(BaseModel):
    inputs: list[dict[str, Any] | str] = Field(
        ..., min_length=1, max_length=1024, description="objects with the task's fields, or plain-text lines"
    )


class PredictResponse(BaseModel):
    task: str
    predictions: list[dict[str, Any]]


class AddTaskRequest(BaseModel):
    name: str = Field(..., pattern=TASK_NAME, description="the task's name in the URLs")
    path: str = Field(
        ..., min_length=1, description="a P-Tuning v2 run folder, or a prompt export inside one"
    )


def _unknown(registry: TaskRegistry, task: str) -> HTTPException:
    return HTTPException(
        status_code=404, detail={"message": f"unknown task {task!r}", "tasks": sorted(registry.tasks)}
    )


def _invalid(index: int, err: Exception) -> RequestValidationError:
    message = re.sub(r"^inputs:\d+: ", "", str(err))
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", "inputs", index), "msg": message, "input": None}]
    )


def create_app(registry: TaskRegistry, batcher: Batcher, allow_task_changes: bool = True) -> FastAPI:
    app = FastAPI(
        title="deepprompt-serve",
        description="Several tasks' deep prompts on one frozen backbone, batched together.",
        version="1",
    )

    @app.get("/health")
    def health() -> dict[str, Any]:
        graphs = registry.engine.graphs
        return {
            "status": "ok",
            "tasks": len(registry.tasks),
            "batcher": batcher.stats(),
            "graphs": None if graphs is None else graphs.counts(),
            "buckets": registry.engine.counts(),
            "gil_switch_ms": sys.getswitchinterval() * 1000,
        }

    @app.get("/v1/tasks")
    def tasks() -> dict[str, Any]:
        return {
            "backbone": registry.backbone_name,
            "device": str(registry.device),
            "dtype": str(registry.dtype).removeprefix("torch."),
            "tasks": {name: t.info(registry.backbone_name) for name, t in sorted(registry.tasks.items())},
        }

    async def answer(task: str, inputs: list[dict[str, Any] | str]) -> JSONResponse:
        served = registry.tasks.get(task)
        if served is None:
            raise _unknown(registry, task)
        examples = []
        for i, item in enumerate(inputs):
            where = f"inputs:{i}"
            try:
                fields = fields_from_text(served.runner, item, where) if isinstance(item, str) else item
                examples.append(example_from_fields(served.runner, fields, where))
            except (DeepPromptError, ValueError, TypeError, KeyError) as err:
                raise _invalid(i, err) from None
        try:
            answers = await batcher.submit_async(task, examples)
        except KeyError:  # removed while the request waited
            raise _unknown(registry, task) from None
        # answers are plain JSON already: serialized as they are, not validated against the schema again
        return JSONResponse({"task": task, "predictions": answers})

    @app.post("/v1/{task}/predict", response_model=PredictResponse)
    async def predict(task: str, request: PredictRequest) -> JSONResponse:
        """Predictions for the task's inputs, in order."""
        return await answer(task, request.inputs)

    async def predict_fast(request: Request) -> JSONResponse:
        try:  # the body parsed and validated in one pass (pydantic's JSON parser)
            body = PredictRequest.model_validate_json(await request.body())
        except ValidationError as err:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
            ) from None
        return await answer(request.path_params["task"], body.inputs)

    # The route keeps its OpenAPI description (`predict`), but requests reach `predict_fast`, past FastAPI's
    # per-request dependency solving and body handling: the same validation and answers, ~0.1 ms less event-loop
    # time a request (the event loop's time bounds the server under load).
    [route] = [r for r in app.routes if getattr(r, "path", None) == "/v1/{task}/predict"]
    route.app = request_response(predict_fast)

    @app.post("/v1/tasks", status_code=201)
    async def add_task(request: AddTaskRequest) -> dict[str, Any]:
        if not allow_task_changes:
            raise HTTPException(
                status_code=403, detail="this server was started with allow_task_changes=false"
            )
        if request.name in registry.tasks:
            raise HTTPException(status_code=409, detail=f"task {request.name!r} is already served")
        try:
            served = await asyncio.to_thread(registry.load, request.name, request.path)
        except (DeepPromptError, FileNotFoundError, ValueError) as err:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body", "path"), "msg": str(err), "input": request.path}]
            ) from None
        return {"name": request.name, **served.info(registry.backbone_name)}

    @app.delete("/v1/tasks/{task}")
    def remove_task(task: str) -> dict[str, Any]:
        if not allow_task_changes:
            raise HTTPException(
                status_code=403, detail="this server was started with allow_task_changes=false"
            )
        if task not in registry.tasks:
            raise _unknown(registry, task)
        registry.remove(task)
        return {"removed": task, "tasks": sorted(registry.tasks)}

    return app
