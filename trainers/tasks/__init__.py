"""The models ``inpaint-studio-train`` knows: CLI name -> "module:TaskClass", imported on demand."""

from __future__ import annotations

import importlib

from ..task import Task

TASKS: dict[str, str] = {
    "inpnet": "trainers.tasks.inpnet:InpNetTask",
    "maskgit-vqgan": "trainers.tasks.maskgit_vqgan:MaskGitVQGANTask",
    "maskgit": "trainers.tasks.maskgit:MaskGitTask",
    "mat": "trainers.tasks.mat:MatTask",
    "asuka-prior": "trainers.tasks.asuka_prior:AsukaPriorTask",
    "asuka-align": "trainers.tasks.asuka_align:AsukaAlignTask",
    "asuka-decoder": "trainers.tasks.asuka_decoder:AsukaDecoderTask",
    "mta": "trainers.tasks.mta:MtaTask",
}


def task_names() -> list[str]:
    return list(TASKS)


def task_class(name: str) -> type[Task]:
    try:
        target = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(TASKS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
