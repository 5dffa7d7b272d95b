"""How a stage-2 language model counts on exact symbolic slots: accuracy by question and number.

`skills.py`'s held-out `count` accuracy is one number over both questions ("How many objects are
in this photo?" and "How many stars are there?"); this splits it by question, by how many objects
the photo shows and by the number in the answer, the way the photo gates benchmark splits photos
(`toyworld_photo_gates.py`, whose question names it reuses). The answer says the number after
its verb ("There are two squares."), so a model that has not counted by the verb says "There is
two squares.": the misses' greedy answers (teacher-forced, as the held-out accuracy reads them)
are listed too.

    python benchmarks/toyworld_count_slots.py runs/lm-all-count-shares   # ~10 s, 600 turns

Chosen not to: render photos (the photo gates benchmark does, through a whole base's tower).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from toyworld_photo_gates import asked

from yollava_agent.toyworld import skills, symbolic
from yollava_agent.toyworld.symbolic import Encoded, Turn
from yollava_agent.toyworld.world import generic_looks


def slot_answers(
    model: torch.nn.Module,
    tokenizer: object,
    turns: list[Turn],
    batch_size: int = 100,
) -> Iterator[tuple[Turn, Encoded, torch.Tensor, bool]]:
    """Each turn, its encoding, its last-layer states on exact slots and whether `model` answers
    it rightly (`skills.answer_hit`)."""
    encoder = skills.SkillEncoder(tokenizer)
    items = [encoder.encode(turn) for turn in turns]
    for start in range(0, len(turns), batch_size):
        chunk = items[start : start + batch_size]
        hidden, _ = symbolic.forward(
            model, symbolic.collate(chunk, tokenizer.pad_token_id), attentions=False
        )
        for row, item in enumerate(chunk):
            turn = turns[start + row]
            yield turn, item, hidden[row], skills.answer_hit(model, hidden[row], item, turn.answer)


@torch.inference_mode()
def count_hits(folder: Path, turns: int, seed: int) -> tuple[dict[str, list[bool]], Counter[str]]:
    """Per split, whether each held-out count turn was answered right; and the misses' answers."""
    model, tokenizer = symbolic.load_symbolic(folder)
    model.eval()
    rng = np.random.default_rng(seed)
    drawn = [skills.skill_turn(rng, generic_looks(), "count") for _ in range(turns)]
    hits: dict[str, list[bool]] = defaultdict(list)
    misses: Counter[str] = Counter()
    for turn, item, hidden, hit in slot_answers(model, tokenizer, drawn):
        question = asked(turn)
        hits["all"].append(hit)
        hits[question].append(hit)
        hits[f"{len(turn.photos[0].objects)} object(s) in the photo"].append(hit)
        hits[f"{question}, answer {turn.answer.split()[2]}"].append(hit)
        if not hit:
            end = len(item.input_ids)
            predicted = model.lm_head(hidden[item.answer_start - 1 : end - 1]).argmax(-1)
            said = tokenizer.decode(predicted, skip_special_tokens=True)
            misses[f"{turn.answer} -> {said}"] += 1
    return hits, misses


def hits_table(first_column: str, hits: dict[str, list[bool]]) -> str:
    """A markdown table of each split's accuracy and turns, `all` first."""
    rows = [f"| {first_column} | accuracy | of |", "| --- | --- | --- |"]
    for name, values in sorted(hits.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        rows.append(f"| {name} | {np.mean(values):.3f} | {len(values)} |")
    return "\n".join(rows)


def slots_arguments(description: str, turns: int, seed: int) -> argparse.Namespace:
    """The command line of a benchmark on exact slots (a stage-2 export, turns, seed), read with
    one torch thread set."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("language_model", type=Path, help="a stage-2 export (skills.py --export)")
    parser.add_argument("--turns", type=int, default=turns)
    parser.add_argument("--seed", type=int, default=seed)
    args = parser.parse_args()
    torch.set_num_threads(1)
    return args


def main() -> None:
    args = slots_arguments(__doc__.splitlines()[0], turns=600, seed=123)
    hits, misses = count_hits(args.language_model, args.turns, args.seed)
    print(f"Count on exact slots, {args.language_model}, {args.turns} turns (seed {args.seed})\n")
    print(hits_table("turns", hits))
    print("\n| missed: answer -> read | turns |")
    print("| --- | --- |")
    for miss, n in misses.most_common(10):
        print(f"| {miss} | {n} |")


if __name__ == "__main__":
    main()
