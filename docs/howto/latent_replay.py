"""Latent replay with your own model and Avalanche's Naive, next to Avalanche's own LR scheduler."""

import os
from collections import OrderedDict

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.training import Naive
from avalanche.training.plugins import LRSchedulerPlugin
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_ext.plugins import LatentReplayPlugin

EPOCHS = int(os.environ.get("HOWTO_EPOCHS", 20))  # at 5 epochs latent replay does no better than Naive
torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
train, test = TensorDataset(x[::2], y[::2]), TensorDataset(x[1::2], y[1::2])
train.targets, test.targets = y[::2], y[1::2]
benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False, seed=0)  # class-IL, classes 0-9

# any model with a named submodule to cut at: here the output of "features" is the latent layer
model = nn.Sequential(OrderedDict(
    features=nn.Sequential(nn.Linear(64, 200), nn.ReLU()),
    classifier=nn.Sequential(nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10)),
))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
# "features" trains during the first experience and is frozen afterwards; 300 latents, class-balanced
plugin = LatentReplayPlugin("features", mem_size=300, balance="class", free_experiences=1)
scheduler = LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, EPOCHS // 2), gamma=0.5))
strategy = Naive(model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(), train_mb_size=32,
                 train_epochs=EPOCHS, plugins=[plugin, scheduler], evaluator=None)

for experience in benchmark.train_stream:
    before = model.features[0].weight.detach().clone()
    strategy.train(experience)
    moved = not torch.equal(before, model.features[0].weight)
    print(f"after experience {experience.current_experience}: {len(plugin.buffer)} latents stored, "
          f"features {'trained' if moved else 'frozen'}")

model.eval()
with torch.no_grad():
    accuracy = (model(test.tensors[0]).argmax(1) == test.tensors[1]).float().mean().item()
print(f"accuracy {accuracy:.3f} (all 10 classes)")
print("frozen below the cut:", plugin.lower_names)
