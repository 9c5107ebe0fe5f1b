"""The section activities: one section (``generate_section``), or a section group written in one
call (``generate_section_group``), for plans and deliverables alike.

A section is served by the first reuse tier that can (activities.reuse_tiers: stored, exact,
semantic, patch), and written in full only when none can; its answer then feeds those tiers.
A section group's members are each still served by the stored and exact tiers first, and
stored and cached under their own keys.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity

from activities.dependencies import PlanDependencies
from activities.errors import ErrorType, final
from activities.group_call import GroupMember, write_group
from activities.heartbeat import heartbeating
from activities.reuse_tiers import ReuseTiers
from activities.section_job import SectionJob, SectionJobs
from activities.writer import OutputRejected, Written
from contracts.models import SectionGroupRequest, SectionGroupResult, SectionRequest, SectionResult
from tokenopt.prompts import build_group_prompt

log = logging.getLogger(__name__)


class SectionActivities:
    def __init__(self, deps: PlanDependencies):
        self.deps = deps
        self.jobs = SectionJobs(deps)
        self.tiers = ReuseTiers(deps)

    @activity.defn
    async def generate_section(self, request: SectionRequest) -> SectionResult:
        """Serve the section from the cheapest tier that can, generating it only if none can."""
        job = await self.jobs.job(request)
        if (done := await self.tiers.done(job)) is not None:
            return done
        if request.fresh:
            async with heartbeating():
                return (await self._generate(job))[0]

        async with heartbeating():
            on = self.tiers.tiers_on(job)
            if not on.any:
                return (await self._generate(job))[0]
            ekey = self.tiers.exact_key(job)
            async with self.tiers.cache.single_flight(ekey) as db:
                if on.exact and (hit := await self.tiers.exact(db, job, ekey)) is not None:
                    return hit
                base, vector = await self.tiers.base(db, job, on.semantic, on.patch)
                written = await self.tiers.from_base(job, base, serve=on.semantic, patch=on.patch) if base else None
                if written is None:
                    result, content = await self._generate(job)
                else:
                    result, content = written
                await self.tiers.put(db, job, ekey, result, content, vector)
                return result

    # The activity's name is the one recorded in histories, from before groups were named apart
    # from the Batch API.
    @activity.defn(name="generate_section_batch")
    async def generate_section_group(self, request: SectionGroupRequest) -> SectionGroupResult:
        """Several small sections of one document in one call (a section group chosen at prepare).

        Each member is first served by the stored and exact tiers as ``generate_section`` would
        serve it; what is left shares one call (one left is written alone). Members the call
        did not answer validly (not JSON, cut off, or their part invalid) are then written one by
        one with the usual retries, so nothing valid is paid twice. Each member is stored and
        cached under its own keys, exactly as if it had been written alone.
        """
        jobs = [await self.jobs.job(r) for r in request.members]
        results: dict[str, SectionResult] = {}
        async with heartbeating():
            for job in jobs:
                if (done := await self.tiers.done(job)) is not None:
                    results[job.spec.key] = done
                elif job.request.fresh:
                    results[job.spec.key] = (await self._generate(job))[0]
            left = [j for j in jobs if j.spec.key not in results]
            ekeys = {j.spec.key: self.tiers.exact_key(j) for j in left if self.tiers.tiers_on(j).exact}
            async with self.tiers.cache.single_flight_many(list(ekeys.values())) as db:
                for job in left:
                    if job.spec.key in ekeys and (hit := await self.tiers.exact(db, job, ekeys[job.spec.key])):
                        results[job.spec.key] = hit
                left = [j for j in left if j.spec.key not in results]
                grouped = await self._write_group(left) if len(left) > 1 else {}
                for job in left:
                    if (written := grouped.get(job.spec.key)) is not None:
                        result, content = await self.tiers.store_written(job, written)
                    else:
                        result, content = await self._generate(job)
                    if job.spec.key in ekeys:
                        await self.tiers.put(db, job, ekeys[job.spec.key], result, content)
                    results[job.spec.key] = result
        return SectionGroupResult(sections=[results[j.spec.key] for j in jobs])

    async def _generate(self, job: SectionJob) -> tuple[SectionResult, dict[str, Any]]:
        """The section written in full (the writer validates and retries), then stored."""

        def messages_for(model: str) -> tuple[list[dict[str, str]], list[str]]:
            prompt = self.jobs.prompt(job.client, job.spec, model, job.kind, job.context)
            return prompt.messages, list(prompt.compression_steps)

        try:
            written = await job.writer.write(
                job.spec, job.tier, messages_for, operation="generate_section", cache_key=job.key
            )
        except OutputRejected as err:
            raise final(ErrorType.INVALID_MODEL_OUTPUT, err) from None
        return await self.tiers.store_written(job, written)

    async def _write_group(self, jobs: list[SectionJob]) -> dict[str, Written]:
        """One call for ``jobs`` (one tier and context, as tokenopt.grouping groups them): the
        members it answered validly; the others are left for the per-section path."""
        tier, context = jobs[0].tier, jobs[0].context
        if any(j.tier is not tier or j.context != context for j in jobs):
            log.warning("section group %s mixes tiers or contexts; writing it one by one", [j.spec.key for j in jobs])
            return {}
        prompt = build_group_prompt(
            jobs[0].client.record.wire(),
            [j.spec for j in jobs],
            model=self.deps.router.model_for(tier),
            techniques=self.deps.techniques,
            context=context,
            kind=jobs[0].kind,
        )
        members = [GroupMember(j.spec, j.ledger, j.prompt.estimated_tokens, j.key) for j in jobs]
        first = jobs[0].request
        outcome = await write_group(
            self.deps.llm,
            self.deps.router,
            first.client_id,
            tier,
            members,
            prompt.messages,
            self.deps.guard,
            service_tier=first.service_tier,
            deadline=first.deadline,
            limiter=self.deps.limiter,
        )
        for key, problem in outcome.problems.items():
            log.warning("section group member %s invalid (%s); writing it on its own", key, problem)
        return outcome.written
