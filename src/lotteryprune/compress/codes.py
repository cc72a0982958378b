"""1-D codes of the 40 emotion scores: PCA, an autoencoder and a variational autoencoder,
and the label-free rule that turns a code into P(positive) (:class:`CodeThreshold`).

The paper reduces the emotion scores "to one dimension, which is then interpreted as positive
or negative using a 0.5 sigmoid threshold". A code has no sign and no zero of its own, so
both come from the emotion scores themselves, never from labels: the score of a text is
``sigmoid(w * z + b)`` with ``z`` the code standardised on train, and ``w``, ``b`` fitted on
the train codes by one of ``CODE_THRESHOLDS`` (config ``compress.code_threshold``):

* ``anchor`` (the default): a 1-D logistic regression of the *affect anchor*
  ``mean(positive-emotion scores) > mean(negative-emotion scores)`` on ``z``. The code's
  orientation is the sign of ``w``, and its 0.5 boundary sits where the code best explains
  the anchor, so the share of positive texts follows the emotion scores (69% positive data
  gives about 62% positives on the default train tweets, not 50%).
* ``mixture``: a two-component 1-D Gaussian mixture with one shared variance, fitted to ``z``
  by EM; the score is the posterior of the component lying on the anchor's positive side
  (a shared variance makes that posterior exactly a sigmoid of an affine function of ``z``).
  The mixing weight is fitted, so no balance is assumed, but the cut rests on the shape of
  the code's distribution.
* ``mean``: ``sigmoid(+-z)``, the boundary at the train mean of the code; what a centred
  PCA and a plain 0.5 sigmoid threshold give (the paper's data is balanced). Kept to compare;
  it puts about half of the texts on each side whatever the data.

Under every rule the orientation is the one along which the affect index rises.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import Fitted, affect_index, emotion_matrix, sigmoid

CODE_THRESHOLDS = ("anchor", "mixture", "mean")


def affect_anchor(affect: np.ndarray) -> np.ndarray:
    """The label-free anchor: 1 where the positive emotions outscore the negative ones on average."""
    return (np.asarray(affect, dtype=np.float64) > 0).astype(np.float64)


def fit_logistic_1d(z: np.ndarray, target: np.ndarray, *, ridge: float = 1e-3, iters: int = 100) -> tuple[float, float]:
    """(w, b) maximising sum log-likelihood of ``target`` under sigmoid(w z + b), minus ridge/2 w^2.

    Newton's method on two parameters; the small ridge on ``w`` keeps a perfectly separating
    code finite (its boundary is then still the separating point).
    """
    z, t = np.asarray(z, dtype=np.float64), np.asarray(target, dtype=np.float64)
    w, b = 0.0, float(np.log((t.mean() + 1e-6) / (1 - t.mean() + 1e-6)))
    for _ in range(iters):
        p = sigmoid(w * z + b)
        r = p * (1 - p)
        grad = np.array([np.sum((p - t) * z) + ridge * w, np.sum(p - t)])
        hess = np.array([[np.sum(r * z * z) + ridge, np.sum(r * z)], [np.sum(r * z), np.sum(r) + 1e-12]])
        step = np.linalg.solve(hess, grad)
        w, b = w - float(step[0]), b - float(step[1])
        if np.abs(step).max() < 1e-10:
            break
    return w, b


def fit_mixture_1d(z: np.ndarray, *, iters: int = 1000, tol: float = 1e-10) -> dict:
    """Two 1-D Gaussians with one shared variance, fitted by EM (components sorted by mean)."""
    z = np.asarray(z, dtype=np.float64)
    mu = np.quantile(z, [0.25, 0.75]).astype(np.float64)
    var = max(float(z.var()) / 2, 1e-6)
    pi = np.array([0.5, 0.5])
    last = -np.inf
    for _ in range(iters):
        logp = -0.5 * (z[:, None] - mu[None, :]) ** 2 / var + np.log(pi)[None, :]
        top = logp.max(1, keepdims=True)
        ll = float(np.sum(top[:, 0] + np.log(np.exp(logp - top).sum(1))) - 0.5 * len(z) * np.log(2 * np.pi * var))
        resp = np.exp(logp - top)
        resp /= resp.sum(1, keepdims=True)
        nk = resp.sum(0) + 1e-12
        pi = nk / nk.sum()
        mu = (resp * z[:, None]).sum(0) / nk
        var = max(float((resp * (z[:, None] - mu[None, :]) ** 2).sum() / len(z)), 1e-6)
        if ll - last < tol * max(1.0, abs(ll)):
            break
        last = ll
    order = np.argsort(mu)
    return {"means": mu[order].tolist(), "variance": var, "weights": pi[order].tolist(), "log_likelihood": ll}


class CodeThreshold:
    """P(positive) = sigmoid(w * (code - mean) / sd + b), with w and b from the emotion scores.

    ``code_train``: the 1-D code of the train texts; ``affect_train``: their affect index
    (mean positive minus mean negative emotion score). ``rule``: one of ``CODE_THRESHOLDS``.
    """

    def __init__(self, code_train: np.ndarray, affect_train: np.ndarray, rule: str = "anchor"):
        if rule not in CODE_THRESHOLDS:
            raise ValueError(f"compress.code_threshold: {rule!r} is not one of {CODE_THRESHOLDS}")
        code_train = np.asarray(code_train, dtype=np.float64)
        affect_train = np.asarray(affect_train, dtype=np.float64)
        self.rule = rule
        self.mean = float(code_train.mean())
        self.sd = float(code_train.std()) or 1.0
        z = (code_train - self.mean) / self.sd
        corr = np.corrcoef(z, affect_train)[0, 1] if z.std() > 0 and affect_train.std() > 0 else 1.0
        self.corr = float(corr) if np.isfinite(corr) else 0.0
        orient = 1.0 if self.corr >= 0 else -1.0  # the direction along which the affect index rises
        anchor = affect_anchor(affect_train)
        self.anchor_rate = float(anchor.mean()) if len(anchor) else None
        self.extra: dict = {}
        if rule == "anchor":
            self.w, self.b = fit_logistic_1d(z, anchor)
        elif rule == "mixture":
            mix = fit_mixture_1d(orient * z)
            (m0, m1), var, (p0, p1) = mix["means"], mix["variance"], mix["weights"]
            # posterior of the upper component: log-odds linear in z because the variance is shared
            self.w = orient * (m1 - m0) / var
            self.b = (m0**2 - m1**2) / (2 * var) + float(np.log(p1 / p0))
            self.extra = {"mixture": mix, "ashman_d": float(abs(m1 - m0) / np.sqrt(var))}
        else:
            self.w, self.b = orient, 0.0
        self.sign = 1.0 if self.w >= 0 else -1.0

    def __call__(self, code: np.ndarray) -> np.ndarray:
        return sigmoid(self.w * (np.asarray(code, dtype=np.float64) - self.mean) / self.sd + self.b)

    def boundary(self) -> float:
        """The code value where the score is 0.5 (in the code's own units)."""
        return self.mean - self.b * self.sd / self.w if self.w else float("nan")

    def record(self) -> dict:
        return {
            "code_threshold": self.rule,
            "code_mean": self.mean,
            "code_sd": self.sd,
            "w": self.w,
            "b": self.b,
            "boundary": self.boundary(),
            "sign": self.sign,
            "corr_with_affect_index": self.corr,
            "anchor_positive_rate_train": self.anchor_rate,
            **self.extra,
        }


def _threshold(params) -> str:
    return str(params.get("code_threshold", "anchor"))


def fit_pca(train, valid, emotions, params, seed):
    from sklearn.decomposition import PCA

    x = emotion_matrix(train, emotions)
    pca = PCA(n_components=1, svd_solver="full").fit(x)
    code = lambda frame: pca.transform(emotion_matrix(frame, emotions))[:, 0]
    thr = CodeThreshold(code(train), affect_index(train, emotions), _threshold(params))
    loadings = dict(zip(emotions.emotion_columns, (thr.sign * pca.components_[0]).round(4).tolist()))
    return Fitted(
        lambda frame: thr(code(frame)),
        {"explained_variance_ratio": float(pca.explained_variance_ratio_[0]), **thr.record(), "loadings": loadings},
        {"pca": pca, "threshold": thr, "code": code},
    )


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
    hidden = int(params["hidden"])
    epochs = int(params["epochs"])
    lr = float(params["lr"])
    batch_size = int(params["batch_size"])
    beta = float(params["beta"]) if variational else 0.0  # the plain autoencoder has no KL term
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

    thr = CodeThreshold(code(train), affect_index(train, emotions), _threshold(params))
    chosen = {
        "hidden": hidden,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "best_epoch": best_epoch,
        "valid_loss": best,
        "valid_loss_curve": [round(v, 5) for v in history],
        **thr.record(),
    }
    if variational:
        chosen["beta"] = beta
    return Fitted(lambda frame: thr(code(frame)), chosen, {"model": model, "threshold": thr, "code": code})


def fit_ae(train, valid, emotions, params, seed):
    return _fit_autoencoder(train, valid, emotions, params, seed, variational=False)


def fit_vae(train, valid, emotions, params, seed):
    return _fit_autoencoder(train, valid, emotions, params, seed, variational=True)
