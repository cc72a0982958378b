"""1-D codes of the 40 emotion scores: PCA, an autoencoder and a variational autoencoder.

A code is standardised on train and passed through a sigmoid; its orientation comes from
the emotion lists (never from labels): it is flipped to correlate positively, on train,
with mean(positive-emotion scores) - mean(negative-emotion scores).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import Fitted, affect_index, emotion_matrix, sigmoid


class CodeOrienter:
    """Standardise a 1-D code on train and orient it along the emotion lists' affect index."""

    def __init__(self, code_train: np.ndarray, affect_train: np.ndarray):
        self.mean = float(code_train.mean())
        self.sd = float(code_train.std()) or 1.0
        corr = np.corrcoef(code_train, affect_train)[0, 1] if code_train.std() > 0 and affect_train.std() > 0 else 1.0
        self.sign = 1.0 if not np.isfinite(corr) or corr >= 0 else -1.0
        self.corr = float(abs(corr)) if np.isfinite(corr) else 0.0

    def __call__(self, code: np.ndarray) -> np.ndarray:
        return sigmoid(self.sign * (code - self.mean) / self.sd)

    def record(self) -> dict:
        return {"code_mean": self.mean, "code_sd": self.sd, "sign": self.sign, "abs_corr_with_affect_index": self.corr}


def fit_pca(train, valid, emotions, params, seed):
    from sklearn.decomposition import PCA

    x = emotion_matrix(train, emotions)
    pca = PCA(n_components=1, svd_solver="full").fit(x)
    code = lambda frame: pca.transform(emotion_matrix(frame, emotions))[:, 0]
    orient = CodeOrienter(code(train), affect_index(train, emotions))
    loadings = dict(zip(emotions.emotion_columns, (orient.sign * pca.components_[0]).round(4).tolist()))
    return Fitted(lambda frame: orient(code(frame)), {"explained_variance_ratio": float(pca.explained_variance_ratio_[0]), **orient.record(), "loadings": loadings})


class _AE(nn.Module):
    def __init__(self, d: int, hidden: int, variational: bool):
        super().__init__()
        self.variational = variational
        self.enc = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 2 if variational else 1))
        self.dec = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, d))

    def encode(self, x):
        h = self.enc(x)
        return (h[:, :1], h[:, 1:]) if self.variational else (h, None)

    def loss(self, x, beta: float, sample: bool, gen: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        z = mu
        if self.variational and sample:
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        recon = ((self.dec(z) - x) ** 2).sum(1).mean()
        if not self.variational:
            return recon
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        return recon + beta * kl


def _fit_autoencoder(train, valid, emotions, params, seed, variational: bool):
    hidden = int(params.get("hidden", 16))
    epochs = int(params.get("epochs", 60))
    lr = float(params.get("lr", 5e-3))
    batch_size = int(params.get("batch_size", 256))
    beta = float(params.get("beta", 1.0))
    x_tr = emotion_matrix(train, emotions)
    # centre per emotion, one pooled scale: labels keep their relative spread
    mean, scale = x_tr.mean(0), float(x_tr.std()) or 1.0
    prep = lambda x: torch.tensor((x - mean) / scale, dtype=torch.float32)
    xt, xv = prep(x_tr), prep(emotion_matrix(valid, emotions)) if len(valid) else None
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _AE(xt.shape[1], hidden, variational)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_epoch, best_state, history = float("inf"), 0, None, []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            loss = model.loss(xt[perm[i : i + batch_size]], beta, sample=True, gen=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            held = xv if xv is not None and len(xv) else xt
            vloss = float(model.loss(held, beta, sample=False))
        history.append(vloss)
        if vloss < best - 1e-9:
            best, best_epoch = vloss, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()

    def code(frame):
        with torch.no_grad():
            return model.encode(prep(emotion_matrix(frame, emotions)))[0][:, 0].double().numpy()

    orient = CodeOrienter(code(train), affect_index(train, emotions))
    chosen = {"hidden": hidden, "epochs": epochs, "lr": lr, "batch_size": batch_size, "best_epoch": best_epoch,
              "valid_loss": best, "valid_loss_curve": [round(v, 5) for v in history], **orient.record()}
    if variational:
        chosen["beta"] = beta
    return Fitted(lambda frame: orient(code(frame)), chosen)


def fit_ae(train, valid, emotions, params, seed):
    return _fit_autoencoder(train, valid, emotions, params, seed, variational=False)


def fit_vae(train, valid, emotions, params, seed):
    return _fit_autoencoder(train, valid, emotions, params, seed, variational=True)
