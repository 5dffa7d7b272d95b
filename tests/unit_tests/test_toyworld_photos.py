"""The toyworld's photo stage: the eye, the assembled LLaVA, the photo fine-tune, the skills.

Tiny eyes trained for a few steps against the committed symbolic base: the mechanics (logs,
resume, probes, the assembled model reading the eye's tokens), not the accuracy of a full run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from yollava_agent.toyworld import assembly, eye, skills, slots, symbolic
from yollava_agent.toyworld.clip import pixels
from yollava_agent.toyworld.language import PLACE_PHRASES
from yollava_agent.toyworld.slots import PLACE_TOKENS, SLOTS
from yollava_agent.toyworld.world import PLACES, generic_looks, render

SYMBOLIC_BASE = Path(symbolic.__file__).parent / "weights" / "symbolic"


def tiny_eye_config(**changes: object) -> eye.EyeConfig:
    values = {
        "steps": 2,
        "batch_size": 8,
        "warmup": 1,
        "width": 32,
        "layers": 1,
        "heads": 2,
        "bank_size": 24,
        "refresh_per_step": 4,
        "eval_every": 1,
        "eval_photos": 30,
    }
    return eye.EyeConfig(**(values | changes))


@pytest.fixture(scope="module")
def eye_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("eye")
    eye.train_eye(out, SYMBOLIC_BASE, tiny_eye_config())
    return out


def test_an_eye_run_logs_probes_per_factor_and_resumes(eye_run: Path) -> None:
    lines = [json.loads(line) for line in (eye_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2]
    for record in lines:
        assert set(record["probes"]) == set(eye.FACTORS)
        assert set(record["object_probes"]) == set(eye.FACTORS) - {"background"}
        assert all(0.0 <= v <= 1.0 for v in record["probes"].values())
        assert record["held_out_regression"] > 0
    before = torch.load(eye_run / "checkpoint.pt", weights_only=False)
    eye.train_eye(eye_run, SYMBOLIC_BASE, tiny_eye_config(steps=3))
    after = torch.load(eye_run / "checkpoint.pt", weights_only=False)
    lines = [json.loads(line) for line in (eye_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3] and after["step"] == 3
    moved = [
        not torch.equal(before["eye"][name], after["eye"][name]) for name in before["eye"]
    ]
    assert any(moved), "the resumed run did not train"


def test_an_eye_run_stopped_early_keeps_its_schedule_and_resumes_to_the_end(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    settings = ["--steps", "3", "--warmup", "1", "--batch-size", "8", "--width", "32"]
    settings += ["--layers", "1", "--heads", "2", "--bank-size", "24", "--refresh-per-step", "4"]
    settings += ["--eval-every", "2", "--eval-photos", "30", "--language-model", str(SYMBOLIC_BASE)]
    out = tmp_path / "eye"
    assert eye.main([str(out), *settings, "--stop-after", "1"]) == 0
    stopped = torch.load(out / "checkpoint.pt", weights_only=False)
    assert stopped["step"] == 1 and stopped["config"]["steps"] == 3
    assert stopped["schedule"]["last_epoch"] == 1
    assert eye.main([str(out), *settings]) == 0
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]


def test_the_probe_report_covers_every_factor_per_token_object_and_size(eye_run: Path) -> None:
    assert eye.main([str(eye_run), "--probe", "--probe-photos", "400"]) == 0
    report = json.loads((eye_run / "probes.json").read_text())
    assert report["photos"] == 400 and report["step"] >= 2
    assert set(report["token_probes"]) == set(eye.FACTORS)
    objects = set(eye.FACTORS) - {"background"}
    assert set(report["object_probes"]) == set(report["object_probes_by_size"]) == objects
    assert all(set(v) == set(eye.FACTORS["size"]) for v in report["object_probes_by_size"].values())
    with pytest.raises(SystemExit, match="Name the frozen language model"):
        eye.main([str(eye_run)])


def test_an_assembled_base_is_probed_on_the_tokens_its_language_model_receives(
    eye_run: Path, assembled, tmp_path: Path
) -> None:
    _, _, tokenizer, model = assembled
    base = tmp_path / "base"
    assembly.write_base(model, tokenizer, base, {"eye": {"step": 2}, "language_model": {}})
    out = tmp_path / "probes"
    assert eye.main([str(out), "--probe", str(base), "--probe-photos", "300"]) == 0
    of_base = json.loads((out / "probes.json").read_text())
    of_eye = eye.probe_report(eye_run, photos=300)
    assert of_base["eye"] == str(base) and of_base["step"] is None
    for kind in ("token_probes", "object_probes"):
        assert of_base[kind] == pytest.approx(of_eye[kind], abs=1e-3), kind
    language_model_only = tmp_path / "language-model"
    symbolic.load_symbolic(SYMBOLIC_BASE)[0].save_pretrained(language_model_only)
    with pytest.raises(ValueError, match=f"--probe '{language_model_only}' is neither an eye run"):
        eye.main([str(out), "--probe", str(language_model_only)])


def test_an_objects_token_is_the_mean_of_the_tokens_it_owns() -> None:
    tokens = torch.arange(2 * SLOTS * 2, dtype=torch.float32).reshape(2, SLOTS, 2)
    owners = torch.full((2, SLOTS), -1)
    owners[0, [1, 2]] = 0
    owners[0, [5]] = 1
    owners[1, [3, 7, 11]] = 0
    labels = torch.full((2, SLOTS, len(eye.FACTORS)), eye.IGNORE)
    labels[0, [1, 2], 0] = 4
    labels[0, 5, 0] = 2
    labels[1, [3, 7, 11], 0] = 1
    means, rows = eye.object_tokens(tokens, labels, owners)
    assert torch.equal(means[0], tokens[0, [1, 2]].mean(0))
    assert torch.equal(means[1], tokens[0, 5])
    assert torch.equal(means[2], tokens[1, [3, 7, 11]].mean(0))
    assert rows[:, 0].tolist() == [4, 2, 1]


@pytest.fixture(scope="module")
def assembled(eye_run: Path):
    tower, _ = eye.load_eye(eye_run)
    language_model, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    return tower, language_model, tokenizer, assembly.assemble(tower, language_model, tokenizer)


def test_the_assembled_llava_reads_the_eyes_tokens_and_the_language_models_text(assembled) -> None:
    tower, language_model, tokenizer, model = assembled
    rng = np.random.default_rng(0)
    scenes = [eye.bank_scene(rng, generic_looks()) for _ in range(3)]
    photos = pixels(np.stack([render(scene, rng) for scene in scenes]))
    with torch.no_grad():
        _, tokens = tower(photos)
        features = model.model.get_image_features(pixel_values=photos)
        features = torch.stack(list(getattr(features, "pooler_output", features)))
        assert torch.allclose(features.reshape(tokens.shape), tokens, atol=1e-5)
        ids = tokenizer("USER: bo is a red star. What colour is bo? ASSISTANT:", return_tensors="pt")
        expected = language_model(**ids).logits
        got = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_written_base_loads_back_through_load_llava_with_the_same_answers(
    assembled, tmp_path: Path
) -> None:
    from yollava_agent.loading import load_llava

    _, _, tokenizer, model = assembled
    assembly._rounded(model)
    folder = tmp_path / "llava"
    assembly.write_base(model, tokenizer, folder, {"note": "test"})
    assert json.loads((folder / "training.json").read_text()) == {"note": "test"}
    runtime = load_llava(str(folder), device="cpu", dtype="fp32")
    turns = [skills.skill_turn(np.random.default_rng(4), generic_looks(), "presence")]
    encoder = skills.SkillEncoder(tokenizer)
    batch = assembly.photo_batch(
        [encoder.encode(t) for t in turns], turns, np.random.default_rng(5), tokenizer.pad_token_id
    )
    with torch.no_grad():
        expected, _ = assembly.llava_forward(model, batch, attentions=False)
        got, _ = assembly.llava_forward(runtime.model, batch, attentions=False)
    assert torch.allclose(got, expected, atol=1e-4)
    prompt = runtime.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
        add_generation_prompt=True,
    )
    assert prompt.startswith("USER: <image>") and prompt.endswith("ASSISTANT:")


def test_the_photo_fine_tune_logs_checkpoints_and_resumes(eye_run: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    tower, _ = eye.load_eye(eye_run)
    language_model, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    model = assembly.assemble(tower, language_model, tokenizer)
    settings = {"batch_size": 4, "learning_rate": 1e-3, "seed": 0, "eval_every": 1, "eval_per_task": 2}
    log = assembly.fine_tune_on_photos(model, tokenizer, 2, out=tmp_path, **settings)
    assert [r["step"] for r in log] == [1, 2]
    assert set(log[-1]["accuracy"]) >= set(skills.TASKS) | {"all"}
    state = torch.load(tmp_path / "photo-checkpoint.pt", weights_only=False)
    assert state["step"] == 2
    tower, _ = eye.load_eye(eye_run)
    fresh = assembly.assemble(tower, language_model, tokenizer)
    log = assembly.fine_tune_on_photos(fresh, tokenizer, 3, out=tmp_path, **settings)
    assert [r["step"] for r in log] == [1, 2, 3]
    lines = (tmp_path / "photo-log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]


def test_a_written_base_continues_with_another_photo_fine_tune_keeping_its_stages(
    assembled, tmp_path: Path
) -> None:
    _, _, tokenizer, model = assembled
    first = tmp_path / "first"
    earlier = {"eye": {"step": 2}, "language_model": {"steps": 5}, "photo_fine_tune": {"steps": 0}}
    assembly.write_base(model, tokenizer, first, earlier)
    before = {k: v.clone() for k, v in assembly.load_base(first)[0].state_dict().items()}
    out = tmp_path / "continued"
    settings = ["--photo-batch", "4", "--eval-every", "1", "--eval-per-task", "2"]
    targets = ["--count-shares", "--choose-own-words", "--statement-share", "0.5"]
    targets += ["--statement-photo-share", "0.5"]
    args = [str(out), "--base", str(first), "--photo-steps", "1", *settings, *targets]
    assert assembly.main(args) == 0
    report = json.loads((out / "llava" / "training.json").read_text())
    assert report["photo_fine_tune"]["count_shares"] is True
    assert report["photo_fine_tune"]["choose_own_words"] is True
    assert report["photo_fine_tune"]["statement_share"] == 0.5
    assert report["photo_fine_tune"]["statement_photo_share"] == 0.5
    assert set(report["photo_fine_tune"]["log"][0]["accuracy_with_statements"]) >= set(skills.TASKS)
    assert set(report["photo_accuracy_with_statements"]) >= set(skills.TASKS) | {"all"}
    assert report["eye"] == earlier["eye"] and report["language_model"] == earlier["language_model"]
    assert report["continued_from"] == {"base": str(first), "photo_fine_tune": {"steps": 0}}
    assert [r["step"] for r in report["photo_fine_tune"]["log"]] == [1]
    continued, _, _ = assembly.load_base(out / "llava")
    moved = [not torch.equal(before[k], v) for k, v in continued.state_dict().items()]
    assert any(moved), "the continued base did not train"


def test_a_new_eye_regressed_onto_a_bases_language_model_replaces_the_bases_eye(
    assembled, eye_run: Path, tmp_path: Path
) -> None:
    _, _, tokenizer, model = assembled
    first = tmp_path / "first"
    earlier = {"eye": {"step": 1}, "language_model": {"steps": 5}}
    assembly.write_base(model, tokenizer, first, earlier)
    table, scale, ids = eye.language_model_rows(first)
    written, _, _ = assembly.load_base(first)
    assert torch.equal(table, written.get_input_embeddings().weight)
    assert scale == written.config.text_config.slot_scale and ids == slots.word_ids(tokenizer)
    new_eye = tmp_path / "eye"
    eye.train_eye(new_eye, first, tiny_eye_config(steps=1))
    out = tmp_path / "out"
    settings = ["--eval-per-task", "2"]
    assert assembly.main([str(out), "--base", str(first), "--eye", str(new_eye), *settings]) == 0
    report = json.loads((out / "llava" / "training.json").read_text())
    assert report["eye"]["step"] == 1 and report["eye"]["log"][0]["step"] == 1
    assert report["continued_from"]["eye"] == earlier["eye"]
    fresh, _ = eye.load_eye(new_eye)
    continued, _, _ = assembly.load_base(out / "llava")
    for name, weight in fresh.tower.state_dict().items():
        got = continued.model.vision_tower.state_dict()[name]
        assert torch.allclose(got, weight.half().float()), name
    assert torch.equal(continued.lm_head.weight, written.lm_head.weight)


def test_a_base_to_continue_must_be_an_assembled_one(tmp_path: Path) -> None:
    # Marker files pass the command line's folder check, so assembly's own checks are reached.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match=f"--base {tmp_path} is not a base written by assembly.py"):
        assembly.main([str(tmp_path / "out"), "--base", str(tmp_path)])
    both = ["--base", str(tmp_path), "--language-model", str(tmp_path)]
    with pytest.raises(SystemExit, match="either --base or --language-model"):
        assembly.main([str(tmp_path / "out"), *both])
    with pytest.raises(SystemExit, match="Name the eye run and the language model"):
        assembly.main([str(tmp_path / "out"), "--eye", str(tmp_path)])


def test_every_skill_turn_encodes_with_its_heads_targets_inside_the_turn() -> None:
    _, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    encoder = skills.SkillEncoder(tokenizer)
    rng = np.random.default_rng(1)
    looks = generic_looks()
    for kind in skills.TASKS:
        for _ in range(20):
            turn = skills.skill_turn(rng, looks, kind)
            item = encoder.encode(turn)
            length = len(item.input_ids)
            assert 0 < item.answer_start < length, kind
            assert all(0 <= p < item.answer_start for p in item.gather + item.point), kind
            image_id = tokenizer.convert_tokens_to_ids(symbolic.IMAGE_TOKEN)
            assert item.input_ids.count(image_id) == SLOTS * len(turn.photos), kind


def _after_leading_photos(prompt: str) -> str:
    return re.sub(rf"^USER: ({re.escape(symbolic.IMAGE_TOKEN)}\n)*", "", prompt)


@pytest.mark.parametrize("photo_share", [0.0, 0.5])
def test_unasked_statements_go_before_a_turn_leaving_its_question_and_targets(
    photo_share: float,
) -> None:
    _, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    encoder = skills.SkillEncoder(tokenizer, count_shares=True, choose_own_words=True)
    rng = np.random.default_rng(4)
    looks = generic_looks()
    counts, shown = set(), set()
    for kind in skills.TASKS:
        for _ in range(20):
            turn = skills.skill_turn(rng, looks, kind)
            told = skills.with_unasked_statements(rng, turn, looks, photo_share)
            head = _after_leading_photos(turn.prompt)
            statements, _, rest = told.prompt.partition(" " + head)
            assert rest == "" and told.answer == turn.answer, kind
            said = _after_leading_photos(statements)
            names = [part.split(" is ")[0] for part in said.rstrip(".").split(". ")]
            counts.add(len(names))
            photos = said.count(symbolic.IMAGE_TOKEN)
            shown.add(photos)
            first = skills.leading_photos(turn.prompt)
            assert told.photos[:first] + told.photos[first + photos :] == turn.photos, kind
            words = head.replace("?", " ").replace(".", " ").split()
            assert not any(name in words for name in names)
            plain, with_statements = encoder.encode(turn), encoder.encode(told)
            added = len(with_statements.input_ids) - len(plain.input_ids)
            pairs = enumerate(zip(plain.input_ids, with_statements.input_ids))
            inserted = next(i for i, (a, b) in pairs if a != b)
            for target in ("gather", "point", "choose"):
                # Where the turn's own targets are, moved past the statements (0 is the sink).
                moved = [p + added if p >= inserted else p for p in getattr(plain, target)]
                assert getattr(with_statements, target) == moved, (kind, target, told.prompt)
            assert with_statements.answer_start == plain.answer_start + added
    assert counts == {1, 2}
    assert shown == ({0, 1, 2} if photo_share else {0})


def test_a_statement_share_outside_0_to_1_is_refused_by_the_value_given(
    tmp_path: Path, capsys
) -> None:
    (tmp_path / "config.json").write_text("{}")  # passes the folder check, to reach the share's
    with pytest.raises(SystemExit):
        assembly.main([str(tmp_path / "run"), "--base", str(tmp_path), "--statement-share", "1.5"])
    assert "'1.5' is not a share of turns: give a number from 0 to 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_place_tokens_join_a_base_without_changing_any_answer() -> None:
    model, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    encoder = symbolic.Encoder(tokenizer)
    rng = np.random.default_rng(2)
    turns = [symbolic.turn(rng, generic_looks(), kind) for kind in symbolic.TASKS]
    batch = symbolic.collate([encoder.encode(t) for t in turns], tokenizer.pad_token_id)
    with torch.no_grad():
        before, _ = symbolic.forward(model, batch, attentions=False)
        skills.add_place_tokens(model, tokenizer)
        assert all(t in tokenizer.get_vocab() for t in PLACE_TOKENS)
        with_places = skills.SkillEncoder(tokenizer)
        batch = symbolic.collate([with_places.encode(t) for t in turns], tokenizer.pad_token_id)
        assert (batch["components"][..., -1] >= len(tokenizer) - len(PLACE_TOKENS)).any()
        after, _ = symbolic.forward(model, batch, attentions=False)
    assert torch.allclose(after, before, atol=1e-5)


@pytest.mark.parametrize("init", ["random", "words"])
def test_place_rows_can_start_as_long_as_a_word_and_are_never_spoken(init: str) -> None:
    model, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    table = model.get_input_embeddings().weight.detach().clone()
    skills.add_place_tokens(model, tokenizer, init, seed=3)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in PLACE_TOKENS]
    rows = model.get_input_embeddings().weight[ids].detach()
    words = table.norm(dim=-1).mean().expand(len(ids))
    assert torch.allclose(rows.norm(dim=-1), words, rtol=1e-4)
    assert not model.get_output_embeddings().weight[ids].any()
    unit = torch.nn.functional.normalize(rows, dim=-1)
    assert (unit @ unit.T - torch.eye(len(ids))).max() < 0.9, "two places start alike"
    if init == "words":
        top_left = table[tokenizer(" top left", add_special_tokens=False)["input_ids"]].sum(0)
        assert torch.cosine_similarity(rows[PLACES.index("top left")], top_left, dim=0) > 0.999
    with pytest.raises(ValueError, match="Place rows start as one of .* got 'middle'"):
        skills.add_place_tokens(model, tokenizer, "middle")


def test_an_eye_started_from_another_keeps_its_weights_and_trains_on(
    eye_run: Path, tmp_path: Path
) -> None:
    started, _ = eye.load_eye(eye_run)
    out = tmp_path / "continued"
    eye.train_eye(out, SYMBOLIC_BASE, tiny_eye_config(steps=1, learning_rate=0.0), init=eye_run)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == 1 and state["init"] == str(eye_run)
    for name, value in started.state_dict().items():
        assert torch.equal(state["eye"][name], value), name
    with pytest.raises(ValueError, match=r"is a tower of \{'width': 32.*pass the same --width"):
        eye.train_eye(tmp_path / "wider", SYMBOLIC_BASE, tiny_eye_config(width=64), init=eye_run)
    assert not (tmp_path / "wider" / "checkpoint.pt").exists()


def test_an_eye_started_from_an_assembled_base_has_the_bases_tower_and_projector(
    assembled, tmp_path: Path
) -> None:
    _, _, tokenizer, model = assembled
    base = tmp_path / "base"
    assembly.write_base(model, tokenizer, base, {"eye": {"step": 1}, "language_model": {}})
    written, _, _ = assembly.load_base(base)
    out = tmp_path / "eye"
    eye.train_eye(out, base, tiny_eye_config(steps=1, learning_rate=0.0), init=base)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == 1 and state["init"] == str(base)
    parts = {"tower": written.model.vision_tower, "projector": written.model.multi_modal_projector}
    for part, module in parts.items():
        for name, value in module.state_dict().items():
            assert torch.equal(state["eye"][f"{part}.{name}"], value), f"{part}.{name}"
    with pytest.raises(ValueError, match=r"is a tower of \{'width': 32.*pass the same --width"):
        eye.train_eye(tmp_path / "wider", base, tiny_eye_config(width=64), init=base)
    with pytest.raises(ValueError, match=f"--init '{tmp_path}' is neither an eye run"):
        eye.train_eye(tmp_path / "none", base, tiny_eye_config(), init=tmp_path)
    assert not (tmp_path / "none" / "checkpoint.pt").exists()


def test_an_option_word_is_the_same_token_as_in_the_description_after_stage_two() -> None:
    from yollava_agent.toyworld.language import two_choice

    _, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    separated = skills.separate_words_from_newlines(tokenizer)
    question, _ = two_choice("What colour is dax?", "red", "blue", np.random.default_rng(0))
    described = separated.tokenize("dax is a red striped star.")
    assert "\u2581red" not in tokenizer.tokenize(question), "the base's tokenizer merged them"
    options = separated.tokenize(question)
    assert "\u2581red" in options and "\u2581blue" in options and "\u2581red" in described
    assert separated.get_vocab() == tokenizer.get_vocab()
    plain = "<image>\nIs dax in this photo? Answer yes or no."
    assert separated(plain)["input_ids"] == tokenizer(plain)["input_ids"]


def test_the_skills_stage_logs_resumes_and_exports_a_base_with_place_tokens(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "skills"
    config = skills.SkillsConfig(steps=2, batch_size=4, warmup=1, eval_every=1, eval_per_task=2)
    skills.train_skills(out, SYMBOLIC_BASE, config)
    skills.train_skills(out, SYMBOLIC_BASE, skills.SkillsConfig(**{**config.__dict__, "steps": 3}))
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert set(lines[-1]["accuracy"]) >= set(skills.TASKS)
    report = skills.export(out, tmp_path / "base", per_task=2)
    assert report["step"] == 3
    model, tokenizer = symbolic.load_symbolic(tmp_path / "base")
    assert all(t in tokenizer.get_vocab() for t in PLACE_TOKENS)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert "\u2581red" in tokenizer.tokenize("A. red\nB. blue")
    choose = model.model.layers[symbolic.CHOOSE_LAYER].self_attn.q_proj.weight.detach().clone()
    places = model.get_input_embeddings().weight[-len(PLACE_TOKENS) :].detach().clone()
    further = tmp_path / "further"
    kept = skills.SkillsConfig(**{**config.__dict__, "steps": 1, "learning_rate": 0.0})
    skills.train_skills(further, tmp_path / "base", kept)
    state = torch.load(further / "checkpoint.pt", weights_only=False)
    q_proj = f"model.layers.{symbolic.CHOOSE_LAYER}.self_attn.q_proj.weight"
    assert torch.equal(state["model"][q_proj], choose), "the trained choose head was wired again"
    assert torch.equal(state["model"]["model.embed_tokens.weight"][-len(PLACE_TOKENS) :], places)
    continued = skills.export(further, tmp_path / "base2", per_task=2)
    assert continued["continued_from"]["step"] == 3 and continued["step"] == 1
    assert len(symbolic.load_symbolic(tmp_path / "base2")[1]) == len(tokenizer)


def test_the_choose_and_letter_heads_target_the_options_only_in_stage_two() -> None:
    _, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    tokenizer = skills.separate_words_from_newlines(tokenizer)
    rng = np.random.default_rng(3)
    turns = [skills.skill_turn(rng, generic_looks(), "named_text") for _ in range(40)]
    letters = [t for t in turns if len(t.answer) == 1]
    worded = [t for t in turns if len(t.answer) > 1]
    assert letters and worded
    encoder = skills.SkillEncoder(tokenizer)
    for turn in letters:
        start, end = symbolic.option_span(turn.prompt, turn.answer)
        chosen = encoder.encode(turn).choose
        text = tokenizer.decode([encoder.encode(turn).input_ids[i] for i in chosen])
        assert text.strip() == turn.prompt[start:end], (turn.prompt, text)
        encoded = encoder.encode(turn)
        for letter in ("A", "B"):
            start, end = symbolic.option_span(turn.prompt, letter)
            words = [w for w, at in encoded.letters.items()
                     if tokenizer.convert_ids_to_tokens(encoded.input_ids[at]) == f"\n{letter}"]
            text = tokenizer.decode([encoded.input_ids[w] for w in sorted(words)])
            assert text.strip() == turn.prompt[start:end], (turn.prompt, letter, text)
    assert all(encoder.encode(t).choose == [] for t in worded)
    batch = symbolic.collate([encoder.encode(t) for t in letters], tokenizer.pad_token_id)
    assert torch.allclose(batch["choose"].sum(-1), torch.ones(len(letters)))
    first = encoder.encode(letters[0])
    assert {w: int(batch["letter"][0, w]) for w in first.letters} == first.letters
    assert int((batch["letter"][0] >= 0).sum()) == len(first.letters)
    plain = symbolic.collate([symbolic.Encoder(tokenizer).encode(letters[0])], tokenizer.pad_token_id)
    assert "choose" not in plain


def _count_turns(counted: int, form: str) -> list[symbolic.Turn]:
    """Count turns of `form` ("objects" or a shape's) whose answer counts `counted` objects."""
    rng = np.random.default_rng(5)
    turns = []
    while len(turns) < 5:
        turn = skills.skill_turn(rng, generic_looks(), "count")
        objects_form = "How many objects" in turn.prompt
        if objects_form == (form == "objects") and len(turn.target_objects) == counted:
            turns.append(turn)
    return turns


@pytest.mark.parametrize(
    ("form", "counted"), [("objects", 1), ("objects", 2), ("objects", 3), ("shape", 1), ("shape", 2)]
)
def test_count_shares_give_the_sink_and_each_counted_object_one_share_of_the_pointer(
    form: str, counted: int
) -> None:
    _, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    encoder = skills.SkillEncoder(tokenizer, count_shares=True)
    for turn in _count_turns(counted, form):
        item = encoder.encode(turn)
        target = symbolic.collate([item], tokenizer.pad_token_id)["point"][0]
        start = skills.photo_starts(item, encoder.image_id)[0]
        owners = slots.slot_owners(turn.photos[0])
        share = 1 / (counted + 1)
        assert float(target[0]) == pytest.approx(share)
        for index in turn.target_objects:
            owned = [start + int(s) for s in np.flatnonzero(owners == index)]
            assert float(target[owned].sum()) == pytest.approx(share), (turn.prompt, index)
        assert float(target.sum()) == pytest.approx(1.0)


def test_without_count_shares_count_turns_keep_the_committed_bases_pointer_target() -> None:
    _, tokenizer = symbolic.load_symbolic(SYMBOLIC_BASE)
    plain = skills.SkillEncoder(tokenizer)
    for turn in _count_turns(2, "objects"):
        assert plain.encode(turn).point == [0] and plain.encode(turn).point_weights is None
    for turn in _count_turns(2, "shape"):
        item = plain.encode(turn)
        target = symbolic.collate([item], tokenizer.pad_token_id)["point"][0]
        assert float(target[0]) == 0.0 and len(item.point) > 1
        assert torch.allclose(target[item.point], torch.full((len(item.point),), 1 / len(item.point)))


def test_a_stage_two_run_trains_count_shares_and_own_word_choices_when_asked(
    tmp_path: Path,
) -> None:
    torch.set_num_threads(1)
    settings = ["--steps", "1", "--batch-size", "2", "--eval-every", "1", "--eval-per-task", "1"]
    only_count = [f"--task-weight={t}=0" for t in skills.TASK_WEIGHTS if t != "count"]
    out = tmp_path / "shares"
    targets = ["--count-shares", "--choose-own-words"]
    args = [str(out), "--base", str(SYMBOLIC_BASE), *settings, *only_count, *targets]
    assert skills.main(args) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["config"]["count_shares"] is True
    assert state["config"]["choose_own_words"] is True


def _lettered_options(prompt: str) -> dict[str, str]:
    """A two-choice prompt's options by letter ("A. at the top" -> {"A": "at the top"})."""
    return dict(line.split(". ", 1) for line in prompt.splitlines() if line[:3] in ("A. ", "B. "))


def _chosen_words(tokenizer: object, item: symbolic.Encoded) -> list[str]:
    return [tokenizer.decode([item.input_ids[p]]).strip() for p in item.choose]


def test_own_word_choices_target_only_the_words_the_other_option_lacks() -> None:
    tokenizer = skills.separate_words_from_newlines(symbolic.load_symbolic(SYMBOLIC_BASE)[1])
    every_word = skills.SkillEncoder(tokenizer)
    own_words = skills.SkillEncoder(tokenizer, choose_own_words=True)
    rng = np.random.default_rng(8)
    seen = set()
    for _ in range(60):
        turn = skills.skill_turn(rng, generic_looks(), "where_choice")
        options = _lettered_options(turn.prompt)
        right = options.pop(turn.answer).split()
        (wrong,) = (option.split() for option in options.values())
        lacking = [word for word in right if word not in wrong]
        assert _chosen_words(tokenizer, every_word.encode(turn)) == right
        assert _chosen_words(tokenizer, own_words.encode(turn)) == (lacking or right)
        seen.add(len(lacking))
    assert seen == {0, 1, 2, 3}, "a one-word difference, a subset and wholly different places"


def test_task_weights_change_only_the_named_tasks_share_of_the_mix() -> None:
    mix = skills.task_mix(["locate=0.4", "count=0"])
    assert mix == skills.TASK_WEIGHTS | {"locate": 0.4, "count": 0.0}
    rng = np.random.default_rng(0)
    only_locate = skills.task_mix([f"{task}=0" for task in skills.TASK_WEIGHTS if task != "locate"])
    kinds = {skills.skill_turn(rng, generic_looks(), mix=only_locate).kind for _ in range(20)}
    assert kinds == {"locate"}


def test_where_turns_ask_the_named_objects_place_in_words_only_when_given_a_share() -> None:
    rng = np.random.default_rng(3)
    looks = generic_looks()
    for _ in range(20):
        turn = skills.skill_turn(rng, looks, "where")
        place = turn.photos[0].objects[turn.target_objects[0]].place
        assert f"Where is {turn.asked_text} in this photo?" in turn.prompt
        assert turn.answer == f"It is {PLACE_PHRASES[place]}."
    assert "where" not in {skills.skill_turn(rng, looks).kind for _ in range(300)}
    mix = skills.task_mix(["where=1"])
    assert "where" in {skills.skill_turn(rng, looks, mix=mix).kind for _ in range(30)}


def test_where_choice_turns_offer_the_named_objects_place_and_another_as_lettered_options() -> None:
    rng = np.random.default_rng(4)
    looks = generic_looks()
    wrong_places = set()
    for _ in range(40):
        turn = skills.skill_turn(rng, looks, "where_choice")
        place = PLACE_PHRASES[turn.photos[0].objects[turn.target_objects[0]].place]
        options = _lettered_options(turn.prompt)
        assert f"Where is {turn.asked_text} in this photo?" in turn.prompt
        assert options[turn.answer] == place
        (other,) = set(options.values()) - {place}
        assert other in PLACE_PHRASES.values()
        wrong_places.add(other)
    assert len(wrong_places) >= 6
    assert "where_choice" not in {skills.skill_turn(rng, looks).kind for _ in range(300)}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("places=0.4", "--task-weight 'places=0.4': no task 'places'; tasks are presence"),
        ("locate=lots", "--task-weight 'locate=lots': the weight must be a number >= 0"),
        ("locate=-1", "--task-weight 'locate=-1': the weight must be a number >= 0"),
        ("locate", "--task-weight 'locate': the weight must be a number >= 0"),
    ],
)
@pytest.mark.parametrize("module", [skills, assembly])
def test_a_bad_task_weight_is_refused_by_name_before_training(
    override: str, message: str, module, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        module.main(
            [str(tmp_path / "run"), "--base", str(SYMBOLIC_BASE), "--task-weight", override]
        )
    assert not (tmp_path / "run").exists()


def test_task_weights_change_the_mix_they_are_given() -> None:
    mix = skills.task_mix(["presence=0.5"], symbolic.TASK_WEIGHTS)
    assert mix == symbolic.TASK_WEIGHTS | {"presence": 0.5}
    assert "count" not in mix


def test_a_mix_with_every_task_at_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="leaves every task at weight 0"):
        skills.task_mix([f"{task}=0" for task in skills.TASK_WEIGHTS])


@pytest.mark.parametrize(
    ("module", "flag", "holds"),
    [
        (skills, "--base", "config.json"),
        (eye, "--language-model", "config.json"),
        (eye, "--init", "checkpoint.pt or config.json"),
        (assembly, "--eye", "checkpoint.pt"),
        (assembly, "--language-model", "config.json"),
        (assembly, "--base", "config.json"),
    ],
)
def test_a_stage_folder_that_is_not_there_is_refused_by_the_path_given(
    module, flag: str, holds: str, tmp_path: Path, capsys
) -> None:
    typo = str(tmp_path / "lm-palces")
    with pytest.raises(SystemExit):
        module.build_parser().parse_args([str(tmp_path / "out"), flag, typo])
    error = capsys.readouterr().err
    assert f"argument {flag}: {typo!r} holds no {holds}: name a folder an earlier stage wrote" in error
    assert not (tmp_path / "out").exists()
