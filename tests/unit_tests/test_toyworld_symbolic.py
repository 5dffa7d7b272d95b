"""Symbolic photos and pretraining: slots, head targets, a short run, resume, export, Yo'LLaVA."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AddedToken

from yollava_agent.toyworld import symbolic
from yollava_agent.toyworld.slots import (
    PLACE_TOKENS,
    SLOTS,
    slot_components,
    slot_owners,
    slot_scale,
    slot_vectors,
    word_ids,
)
from yollava_agent.toyworld.world import (
    PLACES,
    Look,
    Scene,
    generic_looks,
    place_objects,
    random_scene,
)


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return symbolic.build_tokenizer(0)


def test_every_object_owns_a_slot_even_when_small_and_between_patches() -> None:
    rng = np.random.default_rng(0)
    looks = generic_looks()
    for _ in range(200):
        scene = random_scene(rng, looks)
        owners = slot_owners(scene)
        assert owners.shape == (SLOTS,)
        assert set(range(len(scene.objects))) <= set(owners.tolist())
    # A small circle centred on the corner of four patches covers under 15% of each.
    from yollava_agent.toyworld.world import Placed

    circle = Placed(Look("circle", "red", 0, "plain", 0, 0), "small", 5.5, 32.0, 32.0, "middle")
    assert (slot_owners(Scene((circle,), "sand")) == 0).sum() >= 1


def test_a_slot_is_its_objects_words_and_unnamed_tokens_at_a_words_length(tokenizer) -> None:
    ids = word_ids(tokenizer)
    look = Look("star", "blue", 1, "striped", 0, 1)
    scene = Scene(place_objects(np.random.default_rng(1), [look], sizes=["big"]), "night")
    rows, owners = slot_components(scene, ids)
    object_slot = int(np.flatnonzero(owners == 0)[0])
    expected = [
        ids[w] for w in ("blue", "striped", "star", "big", "<shade_1>", "<style_0>", "<rim_1>")
    ]
    # No place tokens in this tokenizer: the eighth component is absent (-1).
    assert rows[object_slot].tolist() == expected + [-1]
    background_slot = int(np.flatnonzero(owners < 0)[0])
    assert rows[background_slot].tolist() == [ids["night"]] + [-1] * 7
    table = torch.randn(len(tokenizer), 16)
    vectors = slot_vectors(torch.from_numpy(rows), table)
    assert torch.allclose(vectors.norm(dim=-1), torch.full((SLOTS,), slot_scale(table)), atol=1e-5)
    direction = table[expected].sum(0)
    assert torch.allclose(
        vectors[object_slot], direction / direction.norm() * slot_scale(table), atol=1e-5
    )


def test_a_base_with_place_tokens_gets_the_objects_place_as_eighth_component(tokenizer) -> None:
    with_places = copy.deepcopy(tokenizer)
    with_places.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in PLACE_TOKENS], special_tokens=True
    )
    ids = word_ids(with_places)
    scene = Scene(
        place_objects(np.random.default_rng(3), [Look("cross", "red", 0, "plain", 0, 0)]), "sand"
    )
    rows, owners = slot_components(scene, ids)
    place = with_places.convert_tokens_to_ids(PLACE_TOKENS[PLACES.index(scene.objects[0].place)])
    assert {int(r[-1]) for r in rows[owners == 0]} == {place}
    assert set(rows[owners < 0][:, -1].tolist()) == {-1}


def test_no_generated_text_contains_a_never_spoken_token(tokenizer) -> None:
    rng = np.random.default_rng(2)
    unnamed = {tokenizer.convert_tokens_to_ids(t) for t in symbolic.UNNAMED_TOKENS}
    encoder = symbolic.Encoder(tokenizer)
    for _ in range(300):
        item = encoder.encode(symbolic.turn(rng, generic_looks()))
        assert not unnamed & set(item.input_ids)


def test_the_heads_targets_are_the_asked_words_and_the_best_matching_objects_slots(
    tokenizer,
) -> None:
    encoder = symbolic.Encoder(tokenizer, sink_for_no=False)
    sink = symbolic.Encoder(tokenizer)
    rng = np.random.default_rng(3)
    looks = generic_looks()
    for _ in range(100):
        item = symbolic.turn(rng, looks, "presence")
        encoded = encoder.encode(item)
        # With the sink (the default), a no's pointer target is the first token only.
        assert (sink.encode(item).point == [0]) == (item.label == "no")
        asked = tokenizer.convert_ids_to_tokens([encoded.input_ids[i] for i in encoded.gather])
        assert [t.lstrip("▁") for t in asked] == [
            w for w in item.asked_text.split() if w not in ("a", "an", "object")
        ]
        _, owners = slot_components(item.photos[0], encoder.ids)
        first_slot = encoded.input_ids.index(encoder.image_id)
        pointed = {int(owners[p - first_slot]) for p in encoded.point}
        assert pointed == set(item.target_objects)
        if item.label == "yes":
            words = item.asked_text.split()[1:]
            for index in item.target_objects:
                look = item.photos[0].objects[index].look
                named = {look.colour, look.pattern, look.shape}
                assert all(w in named for w in words if w != "object")
    reference = symbolic.turn(rng, looks, "reference")
    encoded = encoder.encode(reference)
    second_photo = [i for i, t in enumerate(encoded.input_ids) if t == encoder.image_id][SLOTS]
    _, ref_owners = slot_components(reference.photos[1], encoder.ids)
    assert encoded.gather == [second_photo + s for s in range(SLOTS) if ref_owners[s] >= 0]


def _tiny_config(steps: int) -> symbolic.PretrainConfig:
    return symbolic.PretrainConfig(
        steps=steps,
        batch_size=8,
        warmup=2,
        eval_every=3,
        eval_per_task=4,
        shape=symbolic.ModelShape(hidden=32, layers=3, heads=2, intermediate=64),
    )


def test_a_short_run_logs_held_out_accuracy_resumes_and_exports(tmp_path: Path, tokenizer) -> None:
    out = tmp_path / "run"
    symbolic.pretrain(out, _tiny_config(6))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6]
    for record in records:
        assert set(symbolic.TASKS) <= set(record["accuracy"])
        assert {"loss_answer", "loss_gather", "loss_point", "minutes"} <= set(record)
    first = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    # The same command with more steps continues from step 6 instead of starting over.
    symbolic.pretrain(out, _tiny_config(9))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6, 9]
    resumed = torch.load(out / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 9
    assert not torch.equal(resumed["model"]["lm_head.weight"], first["lm_head.weight"])

    folder = tmp_path / "model"
    report = symbolic.export(out, folder, per_task=6)
    model, loaded_tokenizer = symbolic.load_symbolic(folder)
    assert len(loaded_tokenizer) == len(tokenizer)
    assert model.config.slot_scale == pytest.approx(report["held_out"]["scale"])
    again = symbolic.held_out_accuracy(
        model,
        symbolic.Encoder(loaded_tokenizer),
        report["held_out"]["per_task"],
        report["held_out"]["seed"],
    )
    assert again == report["held_out"]["accuracy"]
    assert json.loads((folder / "training.json").read_text())["step"] == 9


def test_yollava_on_a_symbolic_base_trains_only_the_concept_rows(tmp_path: Path) -> None:
    from yollava_agent.toyworld import symbolic_yollava as sy
    from yollava_agent.training.config import TrainingConfig

    out = tmp_path / "run"
    symbolic.pretrain(out, _tiny_config(3))
    symbolic.export(out, tmp_path / "model", per_task=2)
    model, tokenizer = symbolic.load_symbolic(tmp_path / "model")
    names = ("bo", "kip")
    base = sy.ConceptBase(model, tokenizer, names)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    photos = sy.subject_photos(names, seed=0)
    pool = sy.training_pool(photos, seed=0)
    config = TrainingConfig(
        epochs=2, batch_size=16, warmup_epochs=1, num_hard_negatives=6, num_easy_negatives=6
    )
    negatives = sy.mine(base, photos["bo"].train, pool, config, hard=True)

    # Mining finds bo's same-word look-alikes (one unnamed attribute off) far more often than
    # drawing at random does.
    def alikes(scenes: list) -> int:
        bo = photos["bo"].look
        return sum(
            any(o.look.words == bo.words and o.look != bo for o in s.objects) for s in scenes
        )

    wide = TrainingConfig(num_hard_negatives=40, num_easy_negatives=0)
    hard = alikes(sy.mine(base, photos["bo"].train, pool, wide, hard=True))
    assert hard >= 4 * max(1, alikes(sy.mine(base, photos["bo"].train, pool, wide, hard=False)))
    # Without look-alikes, mining finds none, and keeps every photo without bo's words.
    kept = sy.without_look_alikes(photos["bo"].look, pool)
    assert alikes([s for _, s in kept]) == 0 and hard > 0
    assert len(kept) == len(pool) - alikes([s for _, s in pool])
    assert alikes(sy.mine(base, photos["bo"].train, kept, wide, hard=True)) == 0
    start = base.initial_rows(0, base.photo_slots(photos["bo"].train[0]))
    # One torch thread, as the harness runs (`--threads 1`): with more, CPU kernels may sum in
    # another order from one call to the next.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows, report = sy.train_rows(base, "bo", photos["bo"], negatives, config, slot_init=True)
        # The same training on a second copy of the base gives the same rows: nothing unseeded.
        again, _ = sy.train_rows(
            sy.ConceptBase(model, tokenizer, names), "bo", photos["bo"], negatives, config, True
        )
    finally:
        torch.set_num_threads(threads)
    assert report["samples"] == 5 * config.turns_per_positive + 12 + 5 * 10
    assert len(report["epoch_accuracies"]) == 2
    assert not torch.equal(rows.input_rows, start[0])
    assert torch.equal(again.input_rows, rows.input_rows)
    assert torch.equal(again.output_rows, rows.output_rows)
    after = base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the base must stay frozen"
    result = sy.evaluate_method(base, "reference", names, photos, pool, config, seed=0)
    assert set(result["subjects"]) == set(names)
    assert set(result["summary"]) >= {
        "positive",
        "weighted_others",
        "weighted_look_alikes",
        "text_qa",
    }
