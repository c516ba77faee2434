"""`POST /generate` is shared by two products: seed 000 (LUT generation) and seed 003
(the specialist mixture). This router decides which one answers a request, so the rule
lives in one visible place rather than in a servicer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.lut.service import LutService
from domain.specialist.service import SpecialistService
from models.generation import PreparedRequest


@dataclass(frozen=True)
class RoutedGeneration:
    prepared: PreparedRequest
    experts: tuple[str, ...]
    """The specialist mixture's experts when it answered; empty when the LUT path did."""


class GenerateRouter:
    """Without a `lut_name`, the specialist mixture answers when one is serving the
    requested model (and names its experts); otherwise the LUT path does (a missing or
    empty LUT is exactly the base model)."""

    def __init__(self, luts: LutService, specialists: SpecialistService) -> None:
        self._luts = luts
        self._specialists = specialists

    async def prepare(self, tenant: str, prompt: str, lut_name: str, model: str, threshold: float | None,
                      overrides: Mapping[str, Any]) -> RoutedGeneration:
        serving = self._specialists.serving
        if not lut_name and serving is not None and (not model or self._luts.resolve_model(model) == serving.model):
            prepared, experts = await self._specialists.prepare(prompt, overrides)
            return RoutedGeneration(prepared, experts)
        generation = await self._luts.prepare(tenant, prompt, lut_name, model, threshold, overrides)
        return RoutedGeneration(generation.prepared, ())
