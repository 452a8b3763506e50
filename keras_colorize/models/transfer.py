"""Warm start: copy a trained model's weights into a related model, layer by layer, by name.

A guided model (``hints=True``) is its automatic twin plus zero-initialized guidance
layers, so copying the twin's weights gives a model that colorizes exactly as the twin
does until training moves the new layers (``kc-train --init_from``). Layers whose weight
shapes differ (the class head when the class count changes) keep their initialization.

Example::

    report = transfer_weights(trained, guided)
    report.copied, report.reshaped, report.new   # layer names
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TransferReport:
    """Layer names: ``copied`` (weights taken), ``reshaped`` (shapes differ: left as initialized),
    ``new`` (only in the target: left as initialized)."""

    copied: tuple
    reshaped: tuple
    new: tuple

    def summary(self):
        return (f"{len(self.copied)} layers copied, {len(self.reshaped)} left as initialized because their "
                f"shapes differ ({', '.join(self.reshaped) or 'none'}), {len(self.new)} new "
                f"({', '.join(self.new) or 'none'})")


def _weighted_layers(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


def transfer_weights(source, target):
    """Copies every weighted layer of ``source`` into the ``target`` layer of the same name.

    Raises:
      ValueError: a weighted layer of ``source`` has no namesake in ``target`` (the models are
        not related: a warm start would silently drop trained weights).
    """
    src, dst = _weighted_layers(source), _weighted_layers(target)
    missing = sorted(set(src) - set(dst))
    if missing:
        raise ValueError(f"the target model {target.name!r} has no layers named {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}: it is not a variant of {source.name!r}")
    copied, reshaped = [], []
    for name, layer in src.items():
        weights = layer.get_weights()
        if [w.shape for w in weights] != [tuple(w.shape) for w in dst[name].weights]:
            reshaped.append(name)
            continue
        dst[name].set_weights(weights)
        copied.append(name)
    return TransferReport(tuple(copied), tuple(reshaped), tuple(sorted(set(dst) - set(src))))
