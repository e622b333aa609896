"""quantwm: how post-training quantization makes visual world models fail at planning."""
