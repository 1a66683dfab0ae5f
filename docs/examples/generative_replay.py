"""Deep generative replay with Avalanche on split digits (class-IL): a VAE's samples, labelled by the old model."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.models import MlpVAE
from avalanche.models.generator import VAE_loss
from avalanche.training import GenerativeReplay, VAETraining
from avalanche.training.plugins import EvaluationPlugin, GenerativeReplayPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
# The generator: a small VAE over the inputs (in [0, 1]), trained continually with its own replay.
vae = MlpVAE(tuple(stream.input_shape), nhid=16)
vae_evaluator = EvaluationPlugin(loss_metrics(epoch=True), loggers=[ProgressLogger("vae", n_experiences=2)])
generator = VAETraining(model=vae, optimizer=torch.optim.Adam(vae.parameters(), lr=1e-2, weight_decay=1e-4),
                        criterion=VAE_loss, train_mb_size=16, train_epochs=1, eval_mb_size=256,
                        plugins=[GenerativeReplayPlugin()], evaluator=vae_evaluator)
model = build_network(stream.input_shape, stream.n_outputs, hidden=64)
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("generative_replay", n_experiences=stream.n_experiences)])
strategy = GenerativeReplay(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    generator_strategy=generator, train_mb_size=16, train_epochs=1, eval_mb_size=256,
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)  # trains the classifier, then the VAE, on real + generated data
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"generative_replay, class-IL: final stream accuracy {acc:.3f}")
