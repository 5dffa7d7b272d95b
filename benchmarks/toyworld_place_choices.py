"""How a stage-2 language model chooses between two places on exact slots, by how the options differ.

The benchmark's visual QA asks "Where is bo in this photo?" with two places as "A." and "B."
(`skills.where_choice` draws the same question about a named object). Places are phrases that
share words ("at the top right", "at the top left", "at the top"), and the choose head attends
from the answer to the right option's words: this splits accuracy by how many words each option
has that the other lacks ("1 vs 1": "at the top right" against "at the top left"; "0 vs 1": the
right option is the other one minus a word), the split that tells whether the head can tell
options apart that share most of their words (`skills.own_option_words`).

    python benchmarks/toyworld_place_choices.py runs/lm-all-ownwords   # ~20 s, 1,000 turns

Chosen not to: render photos (`toyworld_photo_gates.py` asks `where_choice` through a whole
base's tower), or split other two-choice questions (colours, shapes and sizes are one word each,
so their options never share one).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from toyworld_count_slots import hits_table, slot_answers, slots_arguments

from yollava_agent.toyworld import skills, symbolic
from yollava_agent.toyworld.language import QA_LETTERS
from yollava_agent.toyworld.world import generic_looks


def option_words(prompt: str) -> dict[str, list[str]]:
    """Each letter's option of a two-choice prompt, as its words."""
    return {
        letter: prompt[slice(*symbolic.option_span(prompt, letter))].split()
        for letter in QA_LETTERS
    }


@torch.inference_mode()
def choice_hits(folder: Path, turns: int, seed: int) -> dict[str, list[bool]]:
    """Per split of how the options differ, whether each held-out `where_choice` turn was
    answered right."""
    model, tokenizer = symbolic.load_symbolic(folder)
    model.eval()
    rng = np.random.default_rng(seed)
    drawn = [skills.skill_turn(rng, generic_looks(), "where_choice") for _ in range(turns)]
    hits: dict[str, list[bool]] = defaultdict(list)
    for turn, _, _, hit in slot_answers(model, tokenizer, drawn):
        options = option_words(turn.prompt)
        right = options.pop(turn.answer)
        (wrong,) = options.values()
        own = len([w for w in right if w not in wrong])
        lacking = len([w for w in wrong if w not in right])
        hits["all"].append(hit)
        hits[f"{own} vs {lacking}"].append(hit)
    return hits


def main() -> None:
    args = slots_arguments(__doc__.splitlines()[0], turns=1000, seed=11)
    hits = choice_hits(args.language_model, args.turns, args.seed)
    print(f"Two places on exact slots, {args.language_model}, {args.turns} turns (seed {args.seed})")
    print()
    print(hits_table("words only the right option has vs only the other", hits))


if __name__ == "__main__":
    main()
