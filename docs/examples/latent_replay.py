"""Latent replay on split_digits: freeze the features after the first experience, replay their activations."""

import torch
from avalanche.training import Naive

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.evaluation import stream_accuracy
from avalanche_ext.models import build_network
from avalanche_ext.plugins import LatentReplayPlugin



torch.set_num_threads(1)
torch.manual_seed(0)
stream = build_benchmark("split_digits", "class", seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=200)

# cut after the first hidden layer ("features.2" is its ReLU): the layer above and the head keep
# learning, the first layer is frozen after experience 1; 300 latent vectors, class-balanced
plugin = LatentReplayPlugin("features.2", mem_size=300, balance="class", free_experiences=1)
strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                 criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=8,
                 plugins=[plugin], evaluator=None)

for i, exp in enumerate(stream.train_stream, 1):
    strategy.train(exp)
    print(f"after experience {i}: accuracy {stream_accuracy(model, stream.test_stream):.3f}, "
          f"memory {len(plugin.buffer)} latents, per class {plugin.buffer.class_counts()}")

print("frozen below the cut:", plugin.lower_names)
print(plugin.memory_report())  # bytes of the 300 samples as latents and as raw inputs
