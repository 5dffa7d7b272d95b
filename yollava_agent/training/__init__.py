"""Concept training: the Yo'LLaVA recipe (data with CLIP-mined hard negatives, then 17 token rows)."""
