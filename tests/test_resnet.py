import pytest
import torch
from torch import nn

from avalanche_ext.models.build import Classifier, MultiHeadNet, count_parameters
from avalanche_ext.models.resnet import BasicBlock, ResNetFeatures, resnet18_features


def reduced_resnet18(n_outputs, in_channels=3, multihead=False):
    """The features under the pack's head layout, as build_network composes them."""
    features = resnet18_features(in_channels)
    return (MultiHeadNet if multihead else Classifier)(features, features.out_features, n_outputs)


def test_parameter_count_for_100_classes_is_about_1_1_million():
    net = reduced_resnet18(100)
    n = count_parameters(net)
    assert n == 1_109_240
    assert 1_000_000 <= n <= 1_200_000
    # the head is 160 x 100 + 100; the rest is the feature extractor
    assert count_parameters(net.classifier) == 160 * 100 + 100


def test_layout_widths_and_no_max_pool():
    f = resnet18_features(3)
    assert isinstance(f, ResNetFeatures) and f.out_features == 160
    stem_conv = f.stem[0]
    assert (stem_conv.kernel_size, stem_conv.stride, stem_conv.out_channels) == ((3, 3), (1, 1), 20)
    assert not any(isinstance(m, nn.MaxPool2d) for m in f.modules())
    widths = [stage[-1].conv2.out_channels for stage in (f.layer1, f.layer2, f.layer3, f.layer4)]
    assert widths == [20, 40, 80, 160]
    assert [len(stage) for stage in (f.layer1, f.layer2, f.layer3, f.layer4)] == [2, 2, 2, 2]
    assert sum(isinstance(m, BasicBlock) for m in f.modules()) == 8
    assert resnet18_features(3, nf=64).out_features == 512


def test_output_shapes_for_rgb_32_and_grey_28():
    torch.manual_seed(0)
    rgb = reduced_resnet18(100)
    assert isinstance(rgb, Classifier)
    assert rgb.features(torch.rand(4, 3, 32, 32)).shape == (4, 160)
    assert rgb(torch.rand(4, 3, 32, 32)).shape == (4, 100)
    grey = reduced_resnet18(10, in_channels=1)
    assert grey(torch.rand(4, 1, 28, 28)).shape == (4, 10)
    assert grey.features(torch.rand(4, 1, 28, 28)).shape == (4, 160)
    for side in (8, 64, 128):  # digits, Tiny ImageNet, CORe50: global average pooling takes any size
        assert rgb.features(torch.rand(2, 3, side, side)).shape == (2, 160)


def test_multihead_variant_has_one_head_per_task():
    net = reduced_resnet18(5, multihead=True)
    assert isinstance(net, MultiHeadNet)
    assert net.forward_single_task(torch.rand(3, 3, 32, 32), 0).shape == (3, 5)


def test_one_training_step_decreases_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = reduced_resnet18(10)
    x, y = torch.rand(16, 3, 32, 32), torch.arange(16) % 10
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    before = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = nn.functional.cross_entropy(net(x), y)
    assert after.item() < before.item()


def test_runs_on_cpu_and_moves_with_to():
    net = reduced_resnet18(10).to(torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in net.parameters())
    net = net.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    assert all(b.dtype == torch.float64 for n, b in net.named_buffers() if "running" in n)
    assert net.eval()(torch.rand(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_moves_to_the_gpu():
    net = reduced_resnet18(10).to("cuda")
    assert net(torch.rand(2, 3, 32, 32, device="cuda")).device.type == "cuda"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="in_channels and nf must be >= 1"):
        resnet18_features(0)
    with pytest.raises(ValueError, match="four stages"):
        ResNetFeatures(3, 20, blocks=(2, 2, 2))
