"""The private parts of HF Trainer that promot relies on are listed in one place and still exist as listed: this
fails when an upgrade of transformers renames one or changes its parameters, before any run misbehaves."""
from __future__ import annotations

import inspect

from transformers import Trainer

from promot.training.loop import PromotTrainer
from promot.training.trainer_privates import OVERRIDDEN, PINNED, READ


def test_every_private_trainer_method_promot_overrides_is_listed():
    overridden = {name for name, value in vars(PromotTrainer).items()
                  if name.startswith("_") and not name.startswith("__") and callable(value) and hasattr(Trainer, name)}
    assert overridden == set(OVERRIDDEN)


def test_each_listed_method_keeps_the_parameters_it_had_in_the_pinned_version():
    changed = {name: tuple(inspect.signature(getattr(Trainer, name)).parameters)
               for name, (params, _) in OVERRIDDEN.items()
               if tuple(inspect.signature(getattr(Trainer, name)).parameters) != params}
    assert changed == {}, f"transformers changed these since {PINNED}: {changed}"


def test_each_listed_attribute_is_still_set_by_trainer():
    source = inspect.getsource(Trainer)
    assert [name for name in READ if f"self.{name} =" not in source] == []


def test_the_signature_check_can_fail():
    params = OVERRIDDEN["_load_rng_state"][0]
    assert tuple(inspect.signature(lambda self, checkpoint, extra: None).parameters) != params
