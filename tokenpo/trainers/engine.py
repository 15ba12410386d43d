"""One micro-batch of a training step: the forwards its method needs, then the method's loss.

Read top-down from :meth:`Engine.micro_step`: collate the pairs (chosen rows, then rejected) → the
policy's forward → TI-DPO's token weights (gradient attribution on the policy) → the reference terms
→ token log-probs (and the token KL, in one pass with them) → TI-DPO's anchor log-ratios → the
method's loss. What runs is what the method's :class:`~tokenpo.trainers.methods.Needs` ask for.

The reference cache lives here and nowhere else: per-example reference log-probs (and reference
token weights) computed once before the first step unless the method reads the reference's logits,
hidden states or activations every step, or the user asks for a live reference. Backward, clipping
and the optimiser step are the loop's (:mod:`tokenpo.trainers.loop`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import nn

from tokenpo.trainers import losses as L
from tokenpo.trainers.activations import captured_activations
from tokenpo.trainers.config import TrainConfig
from tokenpo.trainers.data import TokenizedPair, collate_pairs, collate_sequences
from tokenpo.trainers.forward import (
    CompletionGrid,
    continue_prefixes,
    grid_forward,
    input_embeddings,
    output_cache,
    reference_of,
    reusable_prefix_cache,
)
from tokenpo.trainers.methods import Method, MethodOutput, Stat, StepTensors, split_pairs

# TRL's metric names, in TRL's order: what every metrics.jsonl row starts with.
PAIR_METRICS = (
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
)


@dataclass
class ReferenceTerms:
    """What a micro-batch takes from the reference: cached or live log-probs, or the live logits (for
    the token KL), plus hidden states, activation scores and token weights where the method reads them."""

    logps: torch.Tensor | None = None  # (2B, K)
    logits: torch.Tensor | None = None  # (2B, K, V)
    hidden: list[torch.Tensor] | None = None
    activation_scores: dict[str, list[torch.Tensor]] | None = None
    token_weights: torch.Tensor | None = None


class Engine:
    """Runs micro-batches for one method; the caller owns the optimiser, run folder and checkpoints.

    ``reference`` is the frozen reference model, or None when the policy is a LoRA model (its
    adapters are disabled instead). ``anchored``: whether TI-DPO's anchors (sampled for the training
    pairs, by their index) enter the loss; an engine over held-out pairs has none.
    """

    def __init__(
        self,
        config: TrainConfig,
        method: Method,
        accelerator: Accelerator,
        policy: nn.Module,
        reference: nn.Module | None,
        pairs: Sequence[TokenizedPair],
        pad_token_id: int,
        eos_token_id: int | None,
        anchored: bool = True,
    ):
        self.config, self.method, self.needs, self.accelerator = config, method, method.needs, accelerator
        self.anchor_pool = method.anchors if anchored else None
        self.policy, self.reference, self.pairs = policy, reference, pairs
        self.pad_token_id, self.eos_token_id = pad_token_id, eos_token_id
        self.block = config.training.vocab_chunk_tokens
        # Reference log-probs come from a per-example cache unless the method reads the reference's
        # logits or hidden states every step, or the user asks for a live reference.
        self.cached_reference = self.needs.reference == "cached" and config.training.precompute_reference
        self.cache: dict[int, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}

    # ------------------------------------------------------------------ one micro-batch

    def micro_step(self, indices: list[int], policy: nn.Module | None = None) -> tuple[MethodOutput, StepTensors]:
        """Forwards and the method's loss for the pairs ``indices`` (no backward)."""
        policy = policy if policy is not None else self.policy
        attribution = self.needs.attribution == "policy"
        batch = self._collate(indices)
        grid = CompletionGrid.of(batch["input_ids"], batch["completion_mask"])
        anchored = self._anchored(indices)
        with self.accelerator.autocast():
            embeds = None
            if attribution:
                embeds = input_embeddings(policy)(batch["input_ids"])
                if not embeds.requires_grad:  # frozen embeddings (LoRA): attribution still needs the path
                    embeds.requires_grad_(True)
            output = grid_forward(
                policy,
                batch["input_ids"],
                batch["attention_mask"],
                grid,
                inputs_embeds=embeds,
                keep_cache=bool(anchored),  # anchors continue the chosen rows' prompts
            )
            weights = self._token_weights(output.logits, grid, batch, embeds, retain=True) if attribution else None
            reference = self._reference_terms(batch, grid, indices)
            token_kl = None
            if reference.logits is not None:
                policy_logps, reference_logps, token_kl = L.token_logps_and_kl(
                    output.logits, reference.logits, grid.targets, self.block
                )
            else:
                policy_logps = L.token_logps(output.logits, grid.targets, self.block)
                reference_logps = reference.logps
            tensors = StepTensors(
                targets=grid.targets,
                mask=grid.mask,
                policy_logps=policy_logps,
                reference_logps=reference_logps,
                token_kl=token_kl,
                reference_hidden=reference.hidden,
                activation_scores=reference.activation_scores,
                token_weights=weights if weights is not None else reference.token_weights,
                **self._anchor_terms(policy, indices, anchored, output, grid),
            )
            return self.method.compute(tensors), tensors

    def _collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """Rows: the pairs' chosen, then their rejected (:func:`collate_pairs`), on the device."""
        return self._to_device(collate_pairs([self.pairs[i] for i in indices], self.pad_token_id))

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.to(self.accelerator.device) for key, value in batch.items()}

    def _unwrapped_policy(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.policy)

    def _token_weights(self, logits, grid: CompletionGrid, batch, embeds, retain: bool) -> torch.Tensor:
        """TI-DPO: I_t = ‖∂ max_v logits(last valid position) / ∂e_t‖₁ for every token embedding e_t,
        turned into the method's weights over whole sequences, then laid on the grid at each token's
        own position."""
        rows = logits.shape[0]
        attention = batch["attention_mask"]
        last = attention.sum(-1) - 1
        columns = last - (grid.start - 1)
        target = logits[torch.arange(rows, device=logits.device), columns].float().amax(dim=-1).sum()
        (gradient,) = torch.autograd.grad(target, embeds, retain_graph=retain)
        attribution = gradient.float().abs().sum(dim=-1) * attention
        weights = self.method.token_weights(attribution, attention, batch["completion_mask"])
        return grid.take(weights) * grid.mask

    def _reference_terms(self, batch: dict, grid: CompletionGrid, indices: list[int]) -> ReferenceTerms:
        """From the cache (:meth:`precompute`) where it serves, else a no-grad forward of the reference."""
        needs = self.needs
        terms = ReferenceTerms()
        if needs.attribution == "reference":
            terms.token_weights = self._from_cache("weights", indices, grid.mask)
        if self.cached_reference:
            terms.logps = self._from_cache("logps", indices, grid.mask)
            return terms
        points = needs.activation_points
        with (
            torch.no_grad(),
            reference_of(self._unwrapped_policy(), self.reference) as reference,
            captured_activations(reference, points, needs.activation_layers)
            if points
            else contextlib.nullcontext() as capture,
        ):
            output = grid_forward(
                reference,
                batch["input_ids"],
                batch["attention_mask"],
                grid,
                output_hidden_states=needs.hidden_states,
            )
        if needs.token_kl:  # log-probs come with the KL, from one pass over the vocabulary
            terms.logits = output.logits
        else:
            terms.logps = L.token_logps(output.logits, grid.targets, self.block)
        if needs.hidden_states:
            terms.hidden = [grid.take(h, needs.states_position) for h in output.hidden_states[1:]]
        if points:
            length = batch["input_ids"].shape[1]
            terms.activation_scores = {
                kind: [grid.take(_left_pad(score, length), needs.states_position) for score in scores]
                for kind, scores in capture.scores.items()
                if scores
            }
        return terms

    def _anchored(self, indices: list[int]) -> list[int]:
        pool = self.anchor_pool
        return [i for i in indices if pool is not None and i in pool.anchors]

    def _anchor_terms(
        self, policy: nn.Module, indices: list[int], anchored: list[int], output, grid: CompletionGrid
    ) -> dict:
        """TI-DPO: the anchors' token log-ratios, as the anchor fields of :class:`StepTensors`.

        An anchor shares its prompt with the pair's chosen row, so its forward continues that row's
        cached prompt keys and values (:func:`continue_prefixes`): only the anchor's own tokens are
        computed, and its first token is scored by the chosen row's logits at the prompt's last
        position. Where the model's cache cannot be reused (gradient checkpointing drops it; hybrid or
        sliding-window caches), prompt + anchor rows get a forward of their own.
        """
        if not anchored:
            return {}
        pool = self.method.anchors
        prompts = [self.pairs[i].prompt_ids for i in anchored]
        completions = [pool.anchors[i].completion_ids for i in anchored]
        rows = [indices.index(i) for i in anchored]  # each anchor's pair, and its chosen row
        cache = output_cache(output)
        if cache is not None and reusable_prefix_cache(cache) and all(prompts):
            anchor_rows = self._to_device(collate_sequences([([], c) for c in completions], self.pad_token_id))
            continued = continue_prefixes(policy, cache, rows, [len(p) for p in prompts], anchor_rows)
            # Position len(prompt) − 1 of chosen row r is grid column len(prompt) − start.
            first = torch.stack(
                [output.logits[row, len(prompt) - grid.start] for row, prompt in zip(rows, prompts, strict=True)]
            )
            logits = torch.cat([first[:, None], continued.logits[:, :-1]], dim=1)
            targets, mask = anchor_rows["input_ids"], anchor_rows["completion_mask"].float()
        else:
            batch = self._to_device(collate_sequences(list(zip(prompts, completions, strict=True)), self.pad_token_id))
            anchor_grid = CompletionGrid.of(batch["input_ids"], batch["completion_mask"])
            logits = grid_forward(policy, batch["input_ids"], batch["attention_mask"], anchor_grid).logits
            targets, mask = anchor_grid.targets, anchor_grid.mask
        logps = L.token_logps(logits, targets, self.block)
        reference = torch.zeros_like(logps)
        for row, index in enumerate(anchored):
            values = torch.tensor(pool.anchors[index].reference_logps, device=logps.device)
            reference[row][mask[row].bool()] = values
        return {"anchor_pairs": rows, "anchor_logratios": (logps - reference) * mask, "anchor_mask": mask}

    # ------------------------------------------------------------------ reference cache

    @property
    def needs_cache(self) -> bool:
        """Whether :meth:`precompute` has work: cached reference log-probs or reference token weights."""
        return self.cached_reference or self.needs.attribution == "reference"

    def precompute(self, progress: Callable[[int], None] | None = None) -> None:
        """Per-example reference log-probs (and reference token weights) once, shared by all processes.

        Then frees the frozen reference unless a step still runs it (live terms, anchors).
        """
        if not self.needs_cache:
            return
        wanted = [
            index
            for index in range(len(self.pairs))
            if index % self.accelerator.num_processes == self.accelerator.process_index
        ]
        local = []
        size = self.config.training.per_device_batch_size
        for start in range(0, len(wanted), size):
            indices = wanted[start : start + size]
            local.extend(zip(indices, self._reference_entries(indices), strict=True))
            if progress is not None:
                progress(len(indices) * self.accelerator.num_processes)
        entries = gather_object(local) if self.accelerator.num_processes > 1 else local
        self.cache = dict(entries)
        if self.cached_reference and not (self.needs.anchors and self.anchor_pool is not None):
            self.reference = None

    def _reference_entries(self, indices: list[int]) -> list[dict]:
        batch = self._collate(indices)
        grid = CompletionGrid.of(batch["input_ids"], batch["completion_mask"])
        attribution = self.needs.attribution == "reference"
        with (
            reference_of(self._unwrapped_policy(), self.reference) as reference,
            torch.set_grad_enabled(attribution),
            self.accelerator.autocast(),
        ):
            embeds = None
            if attribution:
                embeds = input_embeddings(reference)(batch["input_ids"]).detach().requires_grad_(True)
            output = grid_forward(reference, batch["input_ids"], batch["attention_mask"], grid, inputs_embeds=embeds)
            logps = L.token_logps(output.logits.detach(), grid.targets, self.block)
            weights = self._token_weights(output.logits, grid, batch, embeds, retain=False) if attribution else None
        return self._split_rows(indices, grid.mask, logps=logps, weights=weights)

    @staticmethod
    def _split_rows(indices: list[int], mask: torch.Tensor, **grids: torch.Tensor | None) -> list[dict]:
        """Per example: each grid's (chosen, rejected) completion values as 1-D CPU tensors."""
        count = len(indices)
        entries: list[dict] = [{} for _ in indices]
        for name, grid in grids.items():
            if grid is None:
                continue
            for row in range(count):
                chosen = grid[row][mask[row].bool()].detach().float().cpu()
                rejected = grid[count + row][mask[count + row].bool()].detach().float().cpu()
                entries[row][name] = (chosen, rejected)
        return entries

    def _from_cache(self, name: str, indices: list[int], mask: torch.Tensor) -> torch.Tensor:
        """Cached per-example vectors laid back on a batch's grid (pair rows only)."""
        rows = [self.cache[i][name][0] for i in indices] + [self.cache[i][name][1] for i in indices]
        grid = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        grid[mask.bool()] = torch.cat(rows).to(mask.device)
        return grid

    # ------------------------------------------------------------------ anchors

    def refresh_anchors(self, step: int, indices: list[int]) -> None:
        """Sample anchors for this process's examples of ``step``, then share them with every process."""
        pool = self.method.anchors
        if pool is None or not pool.due(step):
            return
        policy = self._unwrapped_policy()
        prompts = [self.pairs[i].prompt_ids for i in indices]
        completions = pool.sample(policy, prompts, self.pad_token_id, self.eos_token_id)
        rows = [(prompt, completion) for prompt, completion in zip(prompts, completions, strict=True)]
        batch = self._to_device(collate_sequences(rows, self.pad_token_id))
        grid = CompletionGrid.of(batch["input_ids"], batch["completion_mask"])
        with torch.no_grad(), reference_of(policy, self.reference) as reference, self.accelerator.autocast():
            output = grid_forward(reference, batch["input_ids"], batch["attention_mask"], grid)
            logps = L.token_logps(output.logits, grid.targets, self.block)
        vectors = [logps[row][grid.mask[row].bool()].float().cpu().tolist() for row in range(len(indices))]
        local = list(zip(indices, completions, vectors, strict=True))
        shared = gather_object(local) if self.accelerator.num_processes > 1 else local
        for index, completion, vector in shared:
            pool.store([index], [completion], [vector], step)

    # ------------------------------------------------------------------ metrics

    @staticmethod
    def pair_stats(out: MethodOutput, x: StepTensors) -> dict[str, Stat]:
        """TRL's metric names plus the method's own, as (sum, count) over pairs."""
        r = out.result
        chosen_logps, rejected_logps = split_pairs(L.masked_sum(x.policy_logps, x.mask))
        count = torch.tensor(float(r.losses.numel()), device=r.losses.device)
        stats = {
            "loss": (r.losses.detach().float().sum(), count),
            "rewards/chosen": (r.chosen_rewards.float().sum(), count),
            "rewards/rejected": (r.rejected_rewards.float().sum(), count),
            "rewards/margins": ((r.chosen_rewards - r.rejected_rewards).float().sum(), count),
            "rewards/accuracies": ((r.chosen_rewards > r.rejected_rewards).float().sum(), count),
            "logps/chosen": (chosen_logps.detach().sum(), count),
            "logps/rejected": (rejected_logps.detach().sum(), count),
        }
        stats.update(out.stats)
        return stats


def add_stats(total: dict[str, Stat], new: dict[str, Stat]) -> dict[str, Stat]:
    for key, (value, count) in new.items():
        if key in total:
            total[key] = (total[key][0] + value, total[key][1] + count)
        else:
            total[key] = (value, count)
    return total


def reduce_stats(stats: dict[str, Stat], accelerator: Accelerator) -> dict[str, float]:
    """(sum, count) statistics of this process's micro-batches → means over every process: TRL's pair metrics
    first, in TRL's order, then the method's own. Every process must hold the same keys (a collective)."""
    keys = sorted(stats)
    values = torch.stack([torch.stack([stats[k][0].float(), stats[k][1].float()]) for k in keys])
    values = accelerator.reduce(values.to(accelerator.device), reduction="sum")
    result = {k: float(v[0] / v[1]) if v[1] > 0 else float("nan") for k, v in zip(keys, values.tolist(), strict=True)}
    extra = {k: result[k] for k in keys if k not in PAIR_METRICS}
    return {**{k: result[k] for k in PAIR_METRICS}, **extra}


def _left_pad(scores: torch.Tensor, length: int) -> torch.Tensor:
    """Scores from an output shorter than the sequence (kept logits) belong to its last positions."""
    missing = length - scores.shape[1]
    return torch.nn.functional.pad(scores, (missing, 0)) if missing > 0 else scores
