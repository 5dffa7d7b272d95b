"""What bounds the toyworld benchmark's text QA: how the base reads two-choice questions about
trained tokens.

Text QA asks three two-choice questions a subject with no photo ("<bo> is <bo_1>...<bo_16>. What
colour is <bo>?" then "A. purple", "B. blue" and the instruction to answer with the letter). This
trains every subject of a world as the benchmark's `trained` method does (`evaluate`, its recipe
and negatives), then reads each question with six sets of input rows (`ROW_SETS`): as the
trainer starts them (latent rows at the k-means centres of the train photos' image tokens, the
run's seed), trained, and trained with one part undone: the latent rows put back at their start,
the identifier row put back, the latent rows moved half the way back (start + (trained -
start) / 2), or the trained latent rows' directions at their start lengths. Per set it prints:

- letters right: the scored letter, as the benchmark scores text QA;
- choose head on the concept: the attention that the base's choose head (head
  `SUPERVISED_HEAD` of `CHOOSE_LAYER`, which stage 2 taught to attend from the answer position
  to the right option's words) pays to the concept's tokens, on questions answered rightly and
  wrongly;
- for the trained rows, free text right: the greedy answer to the bare question as training
  asks it ("What colour is <bo>?"), right when it names the right option and not the other.

A second table is the base alone on the stage-2 `ref_text` turns ("dax is <photo>. What colour
is dax?", half of them two-choice), with noise added to the inline photo's image tokens: each
token gets a random direction as long as itself times the given fraction.

    python benchmarks/toyworld_text_qa.py --seed 1                 # all twenty, ~17 min, one core
    python benchmarks/toyworld_text_qa.py --seed 1 --subjects bo kip --noise-turns 60   # smoke
    python benchmarks/toyworld_text_qa.py --seed 2 --base runs/photos-fresh/llava      # another base

Chosen not to: fix anything here. It measures; the README says what the numbers bound.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from yollava_agent.concept import Concept, identifier_token
from yollava_agent.evaluation.dataset import QAItem, load_dataset, read_photo
from yollava_agent.evaluation.harness import evaluate
from yollava_agent.evaluation.methods import QA_LETTERS, TRAINED, qa_text
from yollava_agent.evaluation.scoring import (
    Query,
    candidate_logits,
    conversation,
    distinguishing_tokens,
)
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.sources import ActiveConcept
from yollava_agent.toyworld import assembly, skills
from yollava_agent.toyworld.benchmark import (
    DEFAULT_BASE,
    base_folder,
    benchmark_config,
    toyworld_setup,
)
from yollava_agent.toyworld.symbolic import CHOOSE_LAYER, SUPERVISED_HEAD
from yollava_agent.toyworld.world import generic_looks
from yollava_agent.training.latent_init import image_token_rows
from yollava_agent.training.trainer import initial_concept

ROW_SETS = (
    "start",
    "trained",
    "trained, latent rows at start",
    "trained, identifier row at start",
    "trained, latent rows halfway to start",
    "trained, latent rows at their start lengths",
)
NOISE_FRACTIONS = (0.0, 0.5, 1.0)


def start_rows(runtime: LlavaRuntime, concept: Concept, photos: Sequence) -> torch.Tensor:
    """The input rows the trainer started `concept` from (its run's seed, image init)."""
    seed = concept.training["seed"]
    latent = concept.input_embeddings.shape[0] - 1
    runtime.set_concepts([])
    rows = image_token_rows(runtime, photos, latent, seed)
    return initial_concept(runtime, concept.name, latent, seed, rows).input_embeddings


def row_sets(runtime: LlavaRuntime, concept: Concept, photos: Sequence) -> dict[str, Concept]:
    """`ROW_SETS`: the rows as they start, trained, and trained with one part undone (the latent
    rows or the identifier row put back, the latent rows moved half the way back, or the latent
    rows' directions kept at their start lengths)."""
    start = start_rows(runtime, concept, photos)
    trained = concept.input_embeddings
    latent_back, identifier_back, halfway, start_lengths = (trained.clone() for _ in range(4))
    latent_back[1:] = start[1:]
    identifier_back[0] = start[0]
    halfway[1:] = (start[1:] + trained[1:]) / 2
    start_lengths[1:] = torch.nn.functional.normalize(trained[1:], dim=-1) * start[1:].norm(
        dim=-1, keepdim=True
    )
    rows = (start, trained, latent_back, identifier_back, halfway, start_lengths)
    return {
        name: Concept(
            name=concept.name,
            input_embeddings=set_rows.clone(),
            output_embeddings=concept.output_embeddings,
            base=concept.base,
        )
        for name, set_rows in zip(ROW_SETS, rows, strict=True)
    }


@torch.inference_mode()
def read_question(runtime: LlavaRuntime, concept: Concept, item: QAItem) -> tuple[bool, float]:
    """(letter right, the choose head's attention on the concept's tokens)."""
    active = [ActiveConcept.from_concept(concept)]
    query = Query(qa_text(item, concept.name, identifier_token(concept.name)), None, ())
    right = int(candidate_logits(runtime, [query], active, QA_LETTERS)[0].argmax()) == item.answer
    turns = conversation(query, active)
    shared, _ = distinguishing_tokens(runtime, turns, QA_LETTERS)
    prompt = runtime.processor.apply_chat_template(turns, add_generation_prompt=True)
    # The position scoring reads: after the answer's shared leading tokens, if any.
    ids = torch.tensor([runtime.tokenizer(prompt)["input_ids"] + shared])
    # Attention weights need eager attention; scoring and training keep the model's own, whose
    # float rounding differs (training with eager attention flips one of the 60 letters).
    scored_with = runtime.model.config._attn_implementation
    runtime.model.set_attn_implementation("eager")
    try:
        out = runtime.model(input_ids=ids, output_attentions=True)
    finally:
        runtime.model.set_attn_implementation(scored_with)
    attention = out.attentions[CHOOSE_LAYER][0, SUPERVISED_HEAD, -1]
    own = set(runtime.token_ids(concept.name))
    on_concept = float(sum(attention[i] for i, t in enumerate(ids[0].tolist()) if t in own))
    return right, on_concept


@torch.inference_mode()
def free_text_right(runtime: LlavaRuntime, concept: Concept, item: QAItem) -> bool:
    runtime.set_concepts([concept])
    tokenizer = runtime.tokenizer  # rebuilt whenever the concepts change: take it after
    # The bare question with the concept's prompt before it, as the chat model puts it.
    turns = conversation(Query(item.question, None, ()), [ActiveConcept.from_concept(concept)])
    prompt = runtime.processor.apply_chat_template(turns, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt")
    out = runtime.model.generate(
        **ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id
    )
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    right, wrong = item.options[item.answer], item.options[1 - item.answer]
    return right in answer and wrong not in answer


@torch.inference_mode()
def ref_text_under_noise(
    turns_per_fraction: int, base: str = DEFAULT_BASE
) -> dict[float, dict[str, float]]:
    """The base's `ref_text` accuracy (letters and free text) with noisy inline photo tokens."""
    model, tokenizer, _ = assembly.load_base(base_folder(base))
    fraction = {"value": 0.0}

    def add_noise(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(output.shape, generator=torch.Generator().manual_seed(5))
        length = output.norm(dim=-1, keepdim=True)
        return output + noise / noise.norm(dim=-1, keepdim=True) * length * fraction["value"]

    model.model.multi_modal_projector.register_forward_hook(add_noise)
    results = {}
    for value in NOISE_FRACTIONS:
        fraction["value"] = value
        rng = np.random.default_rng(99)
        turns = [
            skills.skill_turn(rng, generic_looks(), "ref_text") for _ in range(turns_per_fraction)
        ]
        hits: dict[str, list[bool]] = defaultdict(list)
        for turn, _, hit in assembly.judged_turns(model, tokenizer, turns, rng):
            hits["letters" if len(turn.answer) == 1 else "free text"].append(hit)
        results[value] = {k: float(np.mean(v)) for k, v in hits.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="the world (benchmark --seed)")
    parser.add_argument("--subjects", nargs="+", default=None, help="default: all twenty")
    parser.add_argument("--noise-turns", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--base", default=DEFAULT_BASE, help="'photos' (the committed base) or a saved LLaVA folder"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    setup = toyworld_setup(seed=args.seed, base=args.base)
    runtime = setup.runtime
    dataset = load_dataset(setup.dataset)
    trained: dict[str, Concept] = {}
    config = benchmark_config(setup, [TRAINED], args.subjects)
    report = evaluate(
        dataset, runtime, config, on_trained=lambda _, a: trained.update({a.name: a.concept})
    )

    letters: dict[str, list[bool]] = defaultdict(list)
    attention: dict[tuple[str, bool], list[float]] = defaultdict(list)
    free: list[bool] = []
    for name, concept in trained.items():
        eval_concept = dataset.concept(name)
        photos = [read_photo(p) for p in eval_concept.train]
        sets = row_sets(runtime, concept, photos)
        for item in eval_concept.text_questions:
            for set_name, rows in sets.items():
                right, on_concept = read_question(runtime, rows, item)
                letters[set_name].append(right)
                attention[(set_name, right)].append(on_concept)
            free.append(free_text_right(runtime, concept, item))
    questions = len(free)
    print(f"\nWorld {args.seed}, {len(trained)} subjects, {questions} text questions")
    print(
        f"(the benchmark's text QA of these subjects: {report.summary(TRAINED)['text_qa']:.3f})\n"
    )
    print("| input rows | letters right | choose head on the concept: right / wrong letters |")
    print("| --- | --- | --- |")
    for set_name in ROW_SETS:
        on = [
            np.mean(attention[(set_name, r)]) if attention[(set_name, r)] else float("nan")
            for r in (True, False)
        ]
        print(f"| {set_name} | {sum(letters[set_name])}/{questions} | {on[0]:.2f} / {on[1]:.2f} |")
    print(f"\nFree text, trained rows: {sum(free)}/{questions} right.\n")
    print("| noise on the inline photo's tokens | ref_text letters | ref_text free text |")
    print("| --- | --- | --- |")
    for value, result in ref_text_under_noise(args.noise_turns, args.base).items():
        print(
            f"| {value:.1f} x their length | {result['letters']:.3f} | {result['free text']:.3f} |"
        )


if __name__ == "__main__":
    main()
