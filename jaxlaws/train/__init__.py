"""Training substrate: a Pythia-style decoder, the original's optimiser, vmapped static/dynamic sweeps.

Modules: ``model`` (decoder + presets), ``optim`` (AdamW, clipping, warm-up/cosine-to-floor), ``step`` (train
state, run keys), ``loop`` (the one training loop of every run), ``methods`` (the mixing methods of
:mod:`jaxlaws.mixing` as policies), ``evaluate`` (per-group held-out loss), ``checkpoint`` (orbax, atomic
files), ``sweep`` (static/dynamic sweeps, resumable), ``data`` (token groups and samplers), ``cli`` (``jaxlaws
sweep``). Submodules are imported on use so that ``import jaxlaws`` stays light.
"""
