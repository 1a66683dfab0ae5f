"""Generative Negative Replay on split_digits, next to its positive control."""

import torch
from avalanche.training import Naive

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.evaluation import stream_accuracy
from avalanche_ext.models import build_network
from avalanche_ext.plugins import CWRStarHead, GenerativeLatentReplayPlugin



torch.set_num_threads(1)
stream = build_benchmark("split_digits", "class", seed=0)  # 5 experiences of 2 classes
for negative in (True, False):
    torch.manual_seed(0)
    model = build_network(stream.input_shape, stream.n_outputs, hidden=200)
    # CWR* keeps one consolidated row per class; old rows are frozen while new classes learn
    cwr = CWRStarHead("classifier", old_rows="consolidated", mean_shift=False)
    # a conditional VAE learns the 200-d latents continually; its samples are negatives only (GNR)
    # or ordinary labelled replay (positive control)
    gen = GenerativeLatentReplayPlugin("features", negative=negative, replay_batch_size=64, free_experiences=0,
                                       vae_hidden=128, code_dim=16, vae_epochs=10, replay_per_class=100)
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=20,
                     plugins=[cwr, gen], evaluator=None)
    for exp in stream.train_stream:
        strategy.train(exp)
    name = "GNR (negatives only)" if negative else "positive generative replay"
    print(f"{name}: accuracy on all classes {stream_accuracy(model, stream.test_stream):.3f}, "
          f"generator {gen.memory_report()['generator_bytes']} bytes")
