"""Training of the shipped world models (encoder pretraining, predictor, decoder)."""
