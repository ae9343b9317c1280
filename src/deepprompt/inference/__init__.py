"""Inference shared by `deepprompt-predict` and `deepprompt-serve`: task families, inputs, batched runs."""
