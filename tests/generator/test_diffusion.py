import pytest
import torch

from generator.diffusion import add_noise, alphas_cumprod, diffusion_loss, make_scheduler, sample_cfg, sd_betas


def test_betas_are_the_sd_scaled_linear_schedule():
    betas = sd_betas()
    expected = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    assert torch.equal(betas, expected)
    scheduler = make_scheduler(50)
    assert torch.allclose(scheduler.betas.double(), betas, atol=1e-9)
    assert len(scheduler.timesteps) == 50 and scheduler.timesteps.max() < 1000


def test_add_noise_interpolates_signal_and_noise():
    ac = alphas_cumprod()
    x0, noise = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    xt = add_noise(x0, noise, torch.tensor([0, 999]), ac)
    assert torch.allclose(xt[0], torch.full_like(xt[0], ac[0].sqrt().item()))
    assert xt[1].max() < 0.1  # almost no signal left at the last step


def test_guidance_is_cond_plus_scale_times_difference():
    # A "model" whose eps is the context's mean: cond = 1, uncond = 0 everywhere.
    def model(x, t, ctx):
        return ctx.mean(dim=(1, 2)).view(-1, 1, 1, 1).expand_as(x)

    noise = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    cond, uncond = torch.ones(1, 2, 3), torch.zeros(1, 2, 3)
    guided = sample_cfg(model, noise, cond, uncond, cfg_scale=2.0, steps=5)

    def fixed(x, t, ctx):  # eps = 1 + 2 * (1 - 0) = 3
        return torch.full_like(x, 3.0)

    scheduler = make_scheduler(5)
    x = noise
    for t in scheduler.timesteps:
        x = scheduler.step(fixed(x, t, None), t, x).prev_sample  # type: ignore[union-attr]  # a SchedulerOutput
    assert torch.allclose(guided, x)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_sampling_with_an_exact_model_recovers_its_image(prediction_type):
    # For a one-image data set the ideal eps (or v) is known in closed form; the
    # sampler must then land on that image, whatever the parametrisation.
    ac = alphas_cumprod().float()
    target = torch.rand(2, 3, 8, 8) * 2 - 1

    def exact(x, t, ctx):
        a = ac[t.long()].view(-1, 1, 1, 1)
        x0 = target.repeat(x.shape[0] // target.shape[0], 1, 1, 1)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0

    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ctx = torch.zeros(2, 2, 3)
    out = sample_cfg(exact, noise, ctx, ctx, cfg_scale=3.0, steps=10, prediction_type=prediction_type)
    assert torch.allclose(out, target, atol=1e-4)


def test_v_target_is_the_velocity():
    ac = alphas_cumprod()
    x0 = torch.randn(4, 3, 4, 4)
    seen = {}

    def model(x, tt, ctx):
        seen["x"], seen["t"] = x, tt
        return torch.zeros_like(x)

    g = torch.Generator().manual_seed(1)
    loss = diffusion_loss(model, x0, torch.zeros(4, 1, 1), ac, g, "v_prediction")
    g = torch.Generator().manual_seed(1)
    tt = torch.randint(0, 1000, (4,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    a = ac[tt].float().view(-1, 1, 1, 1)
    v = a.sqrt() * noise - (1 - a).sqrt() * x0
    assert torch.allclose(loss, (v**2).mean()) and torch.allclose(seen["x"], add_noise(x0, noise, tt, ac))
    assert torch.equal(seen["t"], tt)  # the model is told the timesteps its input was noised at
