"""Applications built on the trained models: your own folder, fine-tuning, quantisation,
export, serving and the model benchmarks (notebooks 09, 10, 12)."""
