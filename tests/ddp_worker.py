"""Run by tests/test_train.py under torchrun: train a small VAE data-parallel, save the weights."""
import sys

import torch
import torch.distributed as dist

from svae.nn.latent import latent_family
from svae.nn.vae import VAE
from svae.train import TrainConfig, fit


def problem(latent: str):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(240, 20, generator=g) < torch.linspace(0.1, 0.9, 20)).float()
    torch.manual_seed(1)
    model = VAE.mlp(20, (16,), latent_family(latent, 3), "bernoulli")
    return model, x[:200], x[200:]


if __name__ == "__main__":
    latent, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    model, train_x, val_x = problem(latent)
    if dist.get_rank() != 0:  # another start than rank 0's: fit must begin from rank 0's weights
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    fit(model, train_x, val_x, TrainConfig(epochs=3, batch_size=40, micro_batches=2, seed=5), progress=False)
    if dist.get_rank() == 0:  # the weights, and the gradient of the last step (the summed shards')
        torch.save({"state": model.state_dict(), "grads": [p.grad for p in model.parameters()]}, out)
    dist.destroy_process_group()
