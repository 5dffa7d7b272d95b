"""Where a toyworld base misses the photo gates: accuracy per gate task, then by question.

The photo gate asks 0.90 of every visual generic task (`skills.GATE_TASKS`); the bases before
2026-12-08 missed attribute and count (0.84 and 0.84 on 200 turns a task in the report of the
one that led to this benchmark). This first gives every gate task, `locate`, `where` and
`where_choice` on more turns (`assembly.photo_accuracy`: rendered photos through the tower, yes/no
and letters judged by their first token, other answers when every token is the top one), alone
and with one or two statements about names the turn never asks about before its question (as a
chat with active concepts puts them: `skills.with_unasked_statements`, the same turns), then
draws its own held-out `attribute` and `count` turns the same way and splits their accuracy by
what is asked (colour, shape, pattern, where, how big; how many objects, how many of a shape), by
answer form (two-choice letter or words), by how many objects the photo shows and, for count,
by the number in the answer ("two": the verb before it, "There are", must already know it).

    python benchmarks/toyworld_photo_gates.py                       # 600 turns a task, ~2 min
    python benchmarks/toyworld_photo_gates.py --base OUT/llava      # another written base

Chosen not to: split the other gate tasks (their yes / no / hard labels are in the first table's
source, `photo_accuracy`, and in a base's `training.json`).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from transformers import LlavaForConditionalGeneration

from yollava_agent.toyworld import assembly, skills
from yollava_agent.toyworld.benchmark import BASES, DEFAULT_BASE
from yollava_agent.toyworld.symbolic import Turn
from yollava_agent.toyworld.world import generic_looks

ASKED = (
    ("colour", "colour"),
    ("shape", "shape"),
    ("pattern", "pattern"),
    ("Where", "where"),
    ("How big", "how big"),
    ("How many objects", "how many objects"),
    ("How many", "how many of a shape"),
)
"""(words in the question, what the row is called), first match wins."""


def asked(turn: Turn) -> str:
    question = turn.prompt.split("USER:")[-1]
    return next(name for words, name in ASKED if words in question)


@torch.inference_mode()
def split_accuracy(
    model: LlavaForConditionalGeneration,
    tokenizer: object,
    kind: str,
    turns_per_task: int,
    seed: int,
) -> dict[str, list[bool]]:
    rng = np.random.default_rng(seed)
    turns = [skills.skill_turn(rng, generic_looks(), kind) for _ in range(turns_per_task)]
    hits: dict[str, list[bool]] = defaultdict(list)
    for turn, _, hit in assembly.judged_turns(model, tokenizer, turns, rng):
        form = "letter" if len(turn.answer) == 1 else "words"
        hits["all"].append(hit)
        hits[f"{asked(turn)}, {form}"].append(hit)
        hits[f"{len(turn.photos[0].objects)} object(s) in the photo"].append(hit)
        if kind == "count":
            hits[f"{asked(turn)}, answer {turn.answer.split()[2]}"].append(hit)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=BASES[DEFAULT_BASE])
    parser.add_argument("--turns", type=int, default=600, help="turns per task")
    parser.add_argument("--seed", type=int, default=assembly.PHOTO_EVAL_SEED)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer, _ = assembly.load_base(args.base)
    tasks = (*skills.GATE_TASKS, skills.COPY_TASK, "locate", "where", "where_choice")
    with torch.inference_mode():
        accuracy = assembly.photo_accuracy(model, tokenizer, args.turns, args.seed, tasks)
        told = assembly.photo_accuracy(
            model, tokenizer, args.turns, args.seed, tasks, unasked_statements=True
        )
    print("| task | accuracy | with unasked statements before the question | of |")
    print("| --- | --- | --- | --- |")
    for task in tasks:
        print(f"| {task} | {accuracy[task]:.3f} | {told[task]:.3f} | {args.turns} |")
    for kind in ("attribute", "count"):
        hits = split_accuracy(model, tokenizer, kind, args.turns, args.seed)
        print(f"\n| {kind}: turns | accuracy | of |")
        print("| --- | --- | --- |")
        for name, values in sorted(hits.items(), key=lambda kv: (kv[0] != "all", kv[0])):
            print(f"| {name} | {np.mean(values):.3f} | {len(values)} |")


if __name__ == "__main__":
    main()
