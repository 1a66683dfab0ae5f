"""Deep generative replay on split digits (class-IL): a VAE's samples, labelled by the previous model."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network
from avalanche_ext.models.image_vae import ImageVAE
from avalanche_ext.plugins.deep_generative_replay import DeepGenerativeReplayPlugin

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
# The generator: a VAE over the inputs (in [0, 1]); after each experience it learns the new
# images mixed with samples of its previous copy, weighted by the number of tasks seen.
generator = ImageVAE(stream.input_shape, hidden=(64,), latent_dim=8)
replay = DeepGenerativeReplayPlugin(generator, generator_iterations=200, targets="soft", temperature=2.0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=64)
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("generative_replay", n_experiences=stream.n_experiences)])
strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
                 criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=1, eval_mb_size=256,
                 plugins=[replay], evaluator=evaluator)
for experience in stream.train_stream:
    strategy.train(experience)  # the classifier (with replay from experience 2 on), then the VAE
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"generative_replay, class-IL: final stream accuracy {acc:.3f}")
