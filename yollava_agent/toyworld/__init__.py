"""The toyworld benchmark: a procedural world, a small LLaVA that knows it, and Yo'LLaVA measured there.

No pretrained LLaVA can be downloaded where this project is built, and random weights prove
mechanics, not quality. So: `world.py` renders scenes of shapes with colours, patterns and unnamed
details; `language.py` is the world's generic instruction data; `clip.py` trains an open_clip
CLIP on its captions; `convert.py` turns that CLIP's vision tower into Hugging Face's;
`base.py` builds and instruction-tunes the small `LlavaForConditionalGeneration`; `train.py` runs
all of it (`python -m yollava_agent.toyworld.train OUT`); `benchmark.py` writes the benchmark
dataset and runs `yollava eval --benchmark toyworld` on the committed `weights/`.
"""
