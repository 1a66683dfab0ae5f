"""AR1 recomposed on split_digits: CWR* output layer + SI above the latent layer + latent replay."""

import torch
from avalanche.training import Naive
from avalanche.training.plugins import SynapticIntelligencePlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.evaluation import stream_accuracy
from avalanche_ext.models import build_network, split_model
from avalanche_ext.plugins import CWRStarHead, LatentReplayPlugin



torch.set_num_threads(1)
torch.manual_seed(0)
stream = build_benchmark("split_digits", "class", seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=200)

latent = "features.2"  # output of the first hidden layer
below, _ = split_model(model, latent, torch.zeros(2, *stream.input_shape))
plugins = [
    CWRStarHead("classifier"),                                   # consolidated output rows (CWR*)
    LatentReplayPlugin(latent, mem_size=300, free_experiences=1),  # frozen below, replay at the cut
    SynapticIntelligencePlugin(1.0, excluded_parameters=["classifier", *below]),  # SI on the layer above
]
strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                 criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=8,
                 plugins=plugins, evaluator=None)
for i, exp in enumerate(stream.train_stream, 1):
    strategy.train(exp)
    print(f"after experience {i}: accuracy {stream_accuracy(model, stream.test_stream):.3f}")
