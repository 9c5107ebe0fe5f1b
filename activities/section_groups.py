"""Which of a document's sections share one call (a section group), asked at prepare.

tokenopt.grouping decides among the sections still to write; this module leaves out every
section a reuse tier could serve (activities.reuse_tiers), so a group never pays for what is
already paid for. The groups are written by ``generate_section_group`` (activities.section_generation).
"""

from __future__ import annotations

import logging

from temporalio.exceptions import ApplicationError

from activities.dependencies import PlanDependencies
from activities.reuse_tiers import ReuseTiers
from activities.section_job import SectionJobs
from contracts.models import SectionRequest
from llm.client import LOCAL_MAX_TOKENS
from tokenopt.grouping import MAX_GROUP_COMPLETION_TOKENS, Candidate, choose_groups
from tokenopt.techniques import Technique

log = logging.getLogger(__name__)


class SectionGroups:
    def __init__(self, deps: PlanDependencies, jobs: SectionJobs | None = None, tiers: ReuseTiers | None = None):
        self.deps = deps
        self.jobs = jobs or SectionJobs(deps)
        self.tiers = tiers or ReuseTiers(deps)

    async def choose(self, requests: list[SectionRequest], *, context: str = "") -> list[list[str]]:
        """Which of a document's sections to write together (tokenopt.grouping decides), among
        those no stored or cached answer can serve: a section with a stored answer, a live exact
        entry, or (where its semantic or patch tier is on) an earlier answer of this client to
        serve or patch, is left to its own tiers.
        ``context`` is the text the sections that read one would carry (a deliverable's digest)."""
        if not self.deps.techniques.on(Technique.BATCHING):
            return []
        candidates = []
        record: dict[str, object] = {}
        for request in requests:
            if request.fresh:
                continue
            try:
                job = await self.jobs.job(request, context=context)
            except ApplicationError:
                continue  # e.g. over budget: its own activity reports it, after the others ran
            record = job.client.record.wire()
            if await self.tiers.may_serve(job):
                continue
            candidates.append(Candidate(job.spec, job.tier, job.prompt, job.context))
        if not candidates:
            return []
        kind = requests[0].document_kind
        groups = choose_groups(
            candidates,
            record,
            kind=kind,
            techniques=self.deps.techniques,
            model_for=self.deps.router.model_for,
            max_completion_tokens=self.max_completion_tokens,
        )
        for group in groups:
            log.info("section group %s: about %d tokens saved", ", ".join(group.keys), group.saved_tokens)
        return [list(g.keys) for g in groups]

    @property
    def max_completion_tokens(self) -> int:
        """The completion budget a group may ask for: the local server's cap when it has one."""
        if self.deps.llm.structured_output == "json_object":
            return LOCAL_MAX_TOKENS
        return MAX_GROUP_COMPLETION_TOKENS
