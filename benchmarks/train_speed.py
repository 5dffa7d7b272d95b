"""Time teaching one concept: the public recipe (naive) against our fast path, plus inference latency.

Sizes are the public Yo'LLaVA example's: 4 positive photos with 67 recognition turns, 214 negatives
(one turn each), 40 text-only turns, 15 epochs (4815 samples). Both recipes run in the same process
on the same model and the same samples:

- naive: batch 1, the whole sequence (vision tower included) through the model every step, as the
  public code does (`TrainingConfig(fast=False, batch_size=1)`). It is timed on its first `--steps`
  steps (after a few warm-up steps) and extrapolated to the whole recipe; the table says so.
- ours: `TrainingConfig(fast=True, batch_size=B)` (`yollava_agent/training/fast.py`): vision features
  and prefix keys/values once per photo view, only the text after the image per step, logits at
  answer tokens only. Timed over the whole recipe, one-off costs (vision, prefix builds) included.
  Repeat `--cache DEVICE:DTYPE[:GIB]` to time several prefix-cache placements in one run.
- describe: the base model's 40 attribute answers (part of teaching, not of training).
- inference: time to first token with a photo and ms per decoded token, eager, and on a GPU also
  `generate(cache_implementation="static")` compiled by generate itself (CompileConfig
  "reduce-overhead") and with `torch.compile(model.forward, mode="reduce-overhead")`; a variant
  that fails prints its error in the table.

    python benchmarks/train_speed.py --tiny                 # tiny LLaVA on the CPU, ~1 minute
    python benchmarks/train_speed.py                        # LLaVA-1.5-7B architecture, random bf16 weights, GPU
    python benchmarks/train_speed.py --model /path/llava-1.5-7b-hf --cache model --cache cpu:float8_e4m3fn

Random weights cost what real ones do (compute does not depend on values). Without a checkpoint
there is no llava-1.5 tokenizer offline, so the random model uses the tiny model's tokenizer (its
token counts are printed; llava-1.5's are close) with a 336-px CLIP image processor (576 image tokens).
Peak GPU memory includes the weights.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import threading
import time
from dataclasses import dataclass, field

import torch
import transformers
from PIL import Image

from yollava_agent import load_llava
from yollava_agent.concept import identifier_token
from yollava_agent.runtime import LlavaRuntime
from yollava_agent.training import trainer as trainer_module
from yollava_agent.training.config import TrainingConfig
from yollava_agent.training.data import (
    Sample,
    attribute_questions,
    recognition_samples,
    text_samples,
)
from yollava_agent.training.trainer import (
    TrainingCancelled,
    TrainingReport,
    _ConceptRows,
    _Encoder,
    _train_rows,
    describe_photos,
    initial_concept,
)

from synthetic import synthetic_photos

NAME = "bench"
ANSWERS = (
    "It is brown and white, with a red collar and black spots.",
    "It is small and round, a ceramic cup on a wooden table next to the window.",
    "The shape is round with a handle; the material is white ceramic with a blue pattern.",
    "It has short dark hair, a red collar, and black and white spots on the back.",
    "I can see a small brown dog with white paws, sitting on a wooden table.",
)


# -- the model ---------------------------------------------------------------------------------------


def random_llava(device: str, arch: str = "7b") -> LlavaRuntime:
    """LLaVA-1.5-7B's architecture (CLIP ViT-L/14-336 + Llama-2-7B) with random bf16 weights.

    `arch="small"`: the same code path and image size (576 image tokens) with tiny widths, to check
    this script on a CPU.
    """
    from transformers import (
        AutoProcessor,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from yollava_agent.paths import data_home
    from yollava_agent.tiny import build_tiny_llava, tiny_model_dir

    tiny = AutoProcessor.from_pretrained(build_tiny_llava(tiny_model_dir(data_home() / "models")))
    tokenizer = tiny.tokenizer
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=tiny.chat_template,
    )
    small = arch == "small"
    vision = CLIPVisionConfig(
        hidden_size=32 if small else 1024,
        intermediate_size=64 if small else 4096,
        num_hidden_layers=2 if small else 24,
        num_attention_heads=2 if small else 16,
        image_size=336,
        patch_size=14,
        projection_dim=32 if small else 768,
    )
    text = LlamaConfig(
        hidden_size=64 if small else 4096,
        intermediate_size=128 if small else 11008,
        num_hidden_layers=2 if small else 32,
        num_attention_heads=2 if small else 32,
        num_key_value_heads=2 if small else 32,
        vocab_size=32064,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    for part in (config, config.text_config, config.vision_config):
        part._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval().requires_grad_(False)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return LlavaRuntime(model, processor, f"llava-1.5-{arch} architecture, random weights")


# -- the samples ---------------------------------------------------------------------------------------


def labeled(photos: list[Image.Image], seed: int) -> list[tuple[str, Image.Image]]:
    return [(f"photo{seed}-{index}", photo) for index, photo in enumerate(photos)]


def public_example(args: argparse.Namespace) -> tuple[list[tuple[str, Image.Image]], list[Sample]]:
    """4 positive photos with 67 recognition turns, 214 negatives, 40 text-only turns."""
    rng = random.Random(0)
    positives = labeled(synthetic_photos(args.positive_photos, seed=1), 1)
    negatives = labeled(synthetic_photos(args.negatives, seed=2), 2)
    per_photo = -(-args.positive_turns // args.positive_photos)
    samples = recognition_samples(identifier_token(NAME), positives, negatives, per_photo, rng)
    surplus = per_photo * args.positive_photos - args.positive_turns
    for _ in range(surplus):  # drop from the last photo's turns
        samples.pop(
            next(i for i in range(len(samples) - 1, -1, -1) if samples[i].kind == "positive")
        )
    questions = attribute_questions("object")
    answers = [
        [ANSWERS[(p + q) % len(ANSWERS)] for q in range(len(questions))]
        for p in range(args.positive_photos)
    ]
    samples += text_samples(identifier_token(NAME), questions, answers)[: args.text_turns]
    return positives, samples


# -- timing helpers -----------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> str:
    return (
        f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}"
        if device.type == "cuda"
        else "n/a (CPU)"
    )


@dataclass
class Run:
    label: str
    batch: int
    total_steps: int
    timed_steps: int
    seconds: float
    """Whole recipe (extrapolated when only some steps were timed)."""
    ms_per_step: float
    peak: str
    extrapolated: bool
    encode_s: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)
    error: str = ""


def train_run(
    runtime: LlavaRuntime,
    samples: list[Sample],
    config: TrainingConfig,
    label: str,
    limit: int | None,
    warmup: int,
) -> Run:
    """Run `_train_rows` as `train_concept` does (minus describe), stopping after `limit` steps."""
    device = runtime.device
    steps_per_epoch = -(-len(samples) // config.batch_size)
    total = steps_per_epoch * config.epochs
    made: list[object] = []
    original = trainer_module._step_function

    def capture(*args: object, **kwargs: object) -> object:
        step = original(*args, **kwargs)
        made.append(step)
        return step

    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    initial = initial_concept(runtime, NAME, config.num_latent_tokens, config.seed)
    runtime.set_concepts([initial])
    trainer_module._step_function = capture
    try:
        started = time.perf_counter()
        encoder = _Encoder(runtime, NAME, config.num_latent_tokens)
        encoded = [encoder.encode(sample) for sample in samples]
        encode_s = time.perf_counter() - started
        rows = _ConceptRows(initial, runtime.token_ids(NAME)[0])
        stamps: list[float] = []
        cancel = threading.Event()

        def on_event(event: object) -> None:
            stamps.append(
                time.perf_counter()
            )  # after loss.item(): the step has finished on the device
            if limit is not None and len(stamps) >= limit:
                cancel.set()

        reset_memory(device)
        sync(device)
        start = time.perf_counter()
        try:
            _train_rows(
                runtime,
                rows,
                encoder,
                encoded,
                config,
                rng,
                TrainingReport(),
                on_event,
                cancel,
                time.monotonic(),
                1,
            )
        except TrainingCancelled:
            pass
        sync(device)
        timed = len(stamps)
        if timed < total:
            skip = max(0, min(warmup, timed - 2))
            per_step = (
                (stamps[-1] - stamps[skip]) / (timed - 1 - skip)
                if timed > 1
                else stamps[-1] - start
            )
            seconds = per_step * total
        else:
            seconds = stamps[-1] - start
            per_step = seconds / total
        run = Run(
            label,
            config.batch_size,
            total,
            timed,
            seconds,
            per_step * 1e3,
            peak_gib(device),
            timed < total,
            encode_s,
        )
        stats = getattr(made[0], "stats", None) if made else None
        if stats is not None:
            kept_gib = stats.kept_bytes / 2**30
            run.notes = {
                "vision views": str(stats.vision_images),
                "prefix builds": str(stats.prefix_builds),
                "prefix hits": str(stats.prefix_hits),
                "kept views": str(stats.kept_prefixes),
                "kept GiB": f"{kept_gib:.3g}",
            }
        return run
    finally:
        trainer_module._step_function = original
        made.clear()
        runtime.set_concepts([])
        reset_memory(device)


def token_counts(runtime: LlavaRuntime, samples: list[Sample]) -> tuple[int, float, float]:
    """Image-prefix length, mean tokens from the concept prompt on, mean whole-sequence length."""
    initial = initial_concept(runtime, NAME, 16, 0)
    runtime.set_concepts([initial])
    try:
        encoder = _Encoder(runtime, NAME, 16)
        first = runtime.token_ids(NAME)[0]
        prefix, suffix, full = 0, [], []
        for sample in samples:
            ids = encoder.encode(sample).input_ids
            split = ids.index(first)
            if sample.image is not None:
                prefix = split
            suffix.append(len(ids) - split)
            full.append(len(ids))
        return prefix, statistics.mean(suffix), statistics.mean(full)
    finally:
        runtime.set_concepts([])


class _Clock:
    """A streamer that notes when the prompt and each new token come out of `generate`."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        value.cpu()  # waits for the device
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def time_generate(
    runtime: LlavaRuntime,
    photo: Image.Image,
    new_tokens: int,
    warmup: int,
    repeats: int,
    **kwargs: object,
) -> tuple[float, float, float]:
    """(time to first token ms, ms per decoded token, first call s), medians over `repeats`."""
    processor = runtime.processor
    prompt = processor.apply_chat_template(
        [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": "What is in this photo?"}],
            }
        ],
        add_generation_prompt=True,
    )
    inputs = processor(text=prompt, images=[photo], return_tensors="pt")
    inputs = {k: v.to(runtime.device) for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(runtime.dtype)
    ttfts, per_token = [], []
    first_call = 0.0
    for index in range(warmup + repeats):
        clock = _Clock()
        sync(runtime.device)
        started = time.perf_counter()
        with torch.inference_mode():
            runtime.model.generate(
                **inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                streamer=clock,
                **kwargs,
            )
        sync(runtime.device)
        if index == 0:
            first_call = time.perf_counter() - started
        if index >= warmup:
            ttfts.append((clock.stamps[1] - started) * 1e3)
            per_token.append((clock.stamps[-1] - clock.stamps[1]) / (len(clock.stamps) - 2) * 1e3)
    return statistics.median(ttfts), statistics.median(per_token), first_call


def inference_rows(
    runtime: LlavaRuntime, photo: Image.Image, args: argparse.Namespace
) -> list[tuple[str, str, str, str]]:
    rows = []
    repeats = 3 if runtime.device.type == "cuda" else 2
    try:
        ttft, per_token, first = time_generate(runtime, photo, args.decode_tokens, 1, repeats)
        rows.append(("eager (dynamic cache)", f"{ttft:.1f}", f"{per_token:.2f}", f"{first:.1f}"))
    except Exception as e:  # noqa: BLE001 - a benchmark row, not a crash
        rows.append(("eager (dynamic cache)", "error", f"{type(e).__name__}: {str(e)[:160]}", ""))
    if runtime.device.type != "cuda":
        rows.append(("static cache + compile (reduce-overhead)", "skipped (GPU only)", "", ""))
        return rows
    from transformers import CompileConfig

    variants = [
        (
            "static cache, generate's own compile (CompileConfig reduce-overhead)",
            {
                "cache_implementation": "static",
                "compile_config": CompileConfig(mode="reduce-overhead"),
            },
            False,
        ),
        (
            "static cache + torch.compile(model.forward, mode=reduce-overhead)",
            {"cache_implementation": "static", "disable_compile": True},
            True,
        ),
    ]
    for label, kwargs, wrap in variants:
        original = runtime.model.forward
        try:
            torch._dynamo.reset()
            if wrap:
                runtime.model.forward = torch.compile(runtime.model.forward, mode="reduce-overhead")
            ttft, per_token, first = time_generate(
                runtime, photo, args.decode_tokens, 2, repeats, **kwargs
            )
            rows.append((label, f"{ttft:.1f}", f"{per_token:.2f}", f"{first:.1f}"))
        except Exception as e:  # noqa: BLE001 - a benchmark row, not a crash
            message = " ".join(f"{type(e).__name__}: {e}".split())[:200].replace("|", "/")
            rows.append((label, "error", message, ""))
        finally:
            runtime.model.forward = original
            torch._dynamo.reset()
    return rows


# -- main -------------------------------------------------------------------------------------------------


def parse_cache(
    text: str, runtime: LlavaRuntime, batch: int, view_bytes: int
) -> tuple[str, dict[str, object]]:
    """'model' or 'DEVICE:DTYPE[:GIB]' (DEVICE/DTYPE may be 'model'; GIB a number, 'auto' or 'none')."""
    parts = text.split(":")
    device, dtype, gib = parts + ["model", "model", "auto"][len(parts) :]
    settings: dict[str, object] = {
        "prefix_cache_device": None if device == "model" else device,
        "prefix_cache_dtype": None if dtype == "model" else dtype,
    }
    on_gpu = (device == "model" and runtime.device.type == "cuda") or device.startswith("cuda")
    if gib == "auto":
        if on_gpu:
            free, _ = torch.cuda.mem_get_info(runtime.device)
            # Room for one step: each row's prefix K/V stacked, then concatenated with its suffix.
            headroom = 4 * 2**30 + 2 * batch * view_bytes
            settings["prefix_cache_gib"] = max(0.0, (free - headroom) / 2**30)
        else:
            settings["prefix_cache_gib"] = None
    elif gib != "none":
        settings["prefix_cache_gib"] = float(gib)
    budget = settings.get("prefix_cache_gib")
    label = (
        f"{'model device' if device == 'model' else device}, {dtype if dtype != 'model' else str(runtime.dtype).removeprefix('torch.')}, "
        f"{'no limit' if budget is None else f'{budget:.3g} GiB'}"
    )
    return label, settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny LLaVA on the CPU (checks the mechanics)"
    )
    parser.add_argument(
        "--model", default=None, help="a LLaVA checkpoint folder or id (default: random 7B)"
    )
    parser.add_argument(
        "--arch",
        choices=("7b", "small"),
        default="7b",
        help="random model without --model: LLaVA-1.5-7B, or 'small' (same image size) to check on a CPU",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="naive steps to time (default 30 on a GPU, 60 on the CPU)",
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=None, help="naive steps left out of the per-step mean"
    )
    parser.add_argument(
        "--fast-steps", type=int, default=None, help="limit our steps too (then extrapolated)"
    )
    parser.add_argument("--batch-size", default="32", help="our batch size(s), comma-separated ('' skips ours)")
    parser.add_argument(
        "--cache",
        action="append",
        default=None,
        help="prefix cache placement 'model' or DEVICE:DTYPE[:GIB|auto|none]; repeat for several rows",
    )
    parser.add_argument(
        "--full-batch-sizes",
        default="",
        help="also time the full-sequence path at these batch sizes (batching without the cache)",
    )
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-describe", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--positive-photos", type=int, default=4)
    parser.add_argument("--positive-turns", type=int, default=67)
    parser.add_argument("--negatives", type=int, default=214)
    parser.add_argument("--text-turns", type=int, default=40)
    args = parser.parse_args()

    started = time.perf_counter()
    if args.tiny:
        runtime = load_llava("tiny", args.device or "cpu")
    elif args.model:
        runtime = load_llava(args.model, args.device or "cuda", "bf16")
    else:
        if args.arch == "7b" and not torch.cuda.is_available() and args.device in (None, "cuda"):
            parser.error("the random 7B needs a GPU; use --tiny or --arch small on a CPU")
        torch.backends.cuda.matmul.allow_tf32 = True
        runtime = random_llava(
            args.device or ("cuda" if torch.cuda.is_available() else "cpu"), args.arch
        )
    device = runtime.device
    load_s = time.perf_counter() - started
    on_gpu = device.type == "cuda"
    steps = args.steps or (30 if on_gpu else 60)
    warmup = args.warmup_steps if args.warmup_steps is not None else (5 if on_gpu else 3)

    positives, samples = public_example(args)
    prefix, suffix, full = token_counts(runtime, samples)
    text = runtime.model.config.text_config
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    view_bytes = text.num_hidden_layers * 2 * heads * prefix * head_dim * runtime.dtype.itemsize
    views = 2 * (args.positive_photos + args.negatives)

    runs: list[Run] = []
    if not args.skip_naive:
        config = TrainingConfig(epochs=args.epochs, batch_size=1, fast=False)
        runs.append(
            train_run(
                runtime,
                samples,
                config,
                "naive: full sequence, vision tower every step (public code)",
                steps,
                warmup,
            )
        )
    for batch in (int(b) for b in args.full_batch_sizes.split(",") if b):
        # Ablation: batching alone, still the whole sequence and the vision tower every step.
        config = TrainingConfig(epochs=args.epochs, batch_size=batch, fast=False)
        label = "full sequence, batched (no prefix cache)"
        try:
            runs.append(
                train_run(runtime, samples, config, label, args.fast_steps or steps, warmup)
            )
        except Exception as e:  # noqa: BLE001 - e.g. out of memory: a row, not a crash
            message = " ".join(f"{type(e).__name__}: {e}".split())[:200].replace("|", "/")
            runs.append(
                Run(
                    label,
                    batch,
                    0,
                    0,
                    float("nan"),
                    float("nan"),
                    peak_gib(device),
                    False,
                    error=message,
                )
            )
            reset_memory(device)
    for batch in (int(b) for b in args.batch_size.split(",") if b):
        for spec in args.cache or ["model"]:
            label, settings = parse_cache(spec, runtime, batch, view_bytes)
            config = TrainingConfig(epochs=args.epochs, batch_size=batch, fast=True, **settings)
            try:
                runs.append(
                    train_run(
                        runtime,
                        samples,
                        config,
                        f"ours: cached prefixes ({label})",
                        args.fast_steps,
                        1,
                    )
                )
            except Exception as e:  # noqa: BLE001 - e.g. out of memory: a row, not a crash
                message = " ".join(f"{type(e).__name__}: {e}".split())[:200].replace("|", "/")
                runs.append(
                    Run(
                        f"ours: cached prefixes ({label})",
                        batch,
                        0,
                        0,
                        float("nan"),
                        float("nan"),
                        peak_gib(device),
                        False,
                        error=message,
                    )
                )
                reset_memory(device)

    describe_s = None
    if not args.skip_describe:
        sync(device)
        t = time.perf_counter()
        describe_photos(
            runtime,
            positives,
            attribute_questions("object"),
            TrainingConfig().attribute_answer_tokens,
        )
        sync(device)
        describe_s = time.perf_counter() - t
    inference = [] if args.skip_inference else inference_rows(runtime, positives[0][1], args)

    # -- the tables ----------------------------------------------------------------------------------------
    name = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    print(
        f"\n### Teaching one concept: {name}, {runtime.model_id} ({str(runtime.dtype).removeprefix('torch.')}), "
        f"torch {torch.__version__}, transformers {transformers.__version__}\n"
    )
    counts = {k: sum(s.kind == k for s in samples) for k in ("positive", "negative", "text")}
    print(
        f"Samples per epoch: {counts['positive']} positive turns on {args.positive_photos} photos, "
        f"{counts['negative']} negatives, {counts['text']} text-only = {len(samples)}; {args.epochs} epochs. "
        f"Tokens: image prefix {prefix}, mean {suffix:.0f} from the concept prompt on, mean sequence {full:.0f}. "
        f"Prefix K/V per photo view {view_bytes / 2**20:.3g} MiB ({runtime.dtype}), {views} views "
        f"(photos x flips) = {views * view_bytes / 2**30:.3g} GiB. Model ready in {load_s:.0f} s.\n"
    )
    naive = next((r for r in runs if r.label.startswith("naive")), None)
    print(
        "| recipe | batch | steps timed | s per concept | ms per step | ms per sample | peak GPU GiB | vs naive |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        if run.error:
            print(f"| {run.label} | {run.batch} | - | error: {run.error} | | | {run.peak} | |")
            continue
        timed = f"{run.timed_steps} of {run.total_steps}" + (
            " (extrapolated)" if run.extrapolated else ""
        )
        ratio = f"{naive.seconds / run.seconds:.1f}x faster" if naive and run is not naive else "1x"
        print(
            f"| {run.label} | {run.batch} | {timed} | {run.seconds:.1f} | {run.ms_per_step:.1f} | "
            f"{run.ms_per_step / run.batch:.2f} | {run.peak} | {ratio} |"
        )
    details = [r for r in runs if r.notes]
    if details:
        keys = list(details[0].notes)
        print("\n| ours | " + " | ".join(keys) + " |")
        print("| --- |" + " --- |" * len(keys))
        for run in details:
            print(
                f"| {run.label.removeprefix('ours: ')}, batch {run.batch} | "
                + " | ".join(run.notes[k] for k in keys)
                + " |"
            )
    if describe_s is not None:
        print(
            f"\nAlso part of teaching: describing the {args.positive_photos} photos (10 attribute answers each, "
            f"at most {TrainingConfig().attribute_answer_tokens} tokens, batched per photo) took {describe_s:.1f} s; "
            f"encoding the samples {runs[-1].encode_s:.2f} s."
            if runs
            else ""
        )
    if inference:
        print(
            f"\n| generate with a photo ({args.decode_tokens} new tokens) | time to first token ms | ms per decoded token | first call s |"
        )
        print("| --- | --- | --- | --- |")
        for row in inference:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
