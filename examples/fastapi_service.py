"""One KirimClient for the lifetime of a FastAPI app, held by its lifespan.

Run: pip install fastapi uvicorn; KIRIM_API_TOKEN=... uvicorn fastapi_service:app
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from kirim_async import InvalidParameterError, KirimClient, KirimError


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the app's one client at start-up; close it at shutdown."""
    async with KirimClient() as client:  # the token comes from KIRIM_API_TOKEN
        app.state.kirim = client
        yield


app = FastAPI(lifespan=lifespan)


def kirim(request: Request) -> KirimClient:
    client: KirimClient = request.app.state.kirim
    return client


class NewLabel(BaseModel):
    name: str
    color: str | None = None


@app.post("/labels", status_code=201)
async def create_label(
    new: NewLabel, client: Annotated[KirimClient, Depends(kirim)]
) -> dict[str, str]:
    try:
        label = await client.labels.create(new.name, color=new.color)
    except InvalidParameterError as exc:  # refused before anything was sent
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except KirimError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from None
    return {"id": label.id, "name": label.name}
