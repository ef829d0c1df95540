"""Microcontroller plans: a firmware build plan instead of IaC (``firmware/FIRMWARE.md`` + ``firmware.yaml``).

A model on an MCU is compiled into the firmware image: there is no cluster, no container and nothing for
Pulumi to create. What a reviewer needs instead: does the int8 model fit the device's flash and RAM, which
toolchain turns it into C, and the build/flash steps.

Sizes: weights = params x 1 byte (int8, TFLite Micro and X-CUBE-AI store int8 weights 1:1); the tensor arena
(peak activations + runtime scratch) is the plan's predicted memory per device. Flash reserve for the
application and RTOS: 25 % (a common budget in the STM32Cube.AI and TFLite Micro guides).
"""

from __future__ import annotations

from typing import Any

from planner.plan import Part, Plan

FLASH_RESERVE = 0.25

#: Toolchain per device family / catalog runtime. Sources: STM32Cube.AI (X-CUBE-AI / ST Edge AI) user manual;
#: TensorFlow Lite for Microcontrollers docs; Espressif ESP-DL docs.
TOOLCHAINS = {
    "stm32": {"name": "STM32Cube.AI (X-CUBE-AI / ST Edge AI Core)", "converter": "stedgeai generate",
              "compiler": "arm-none-eabi-gcc (STM32CubeIDE)", "flasher": "STM32CubeProgrammer"},
    "esp32": {"name": "ESP-DL / TFLite Micro for ESP-IDF", "converter": "xxd -i model.tflite",
              "compiler": "idf.py build (xtensa/riscv gcc)", "flasher": "idf.py flash"},
    "default": {"name": "TensorFlow Lite for Microcontrollers", "converter": "xxd -i model.tflite",
                "compiler": "arm-none-eabi-gcc + CMSIS-NN kernels", "flasher": "vendor flasher / OTA"},
}


def toolchain(device_id: str) -> dict[str, str]:
    for prefix, tc in TOOLCHAINS.items():
        if device_id.startswith(prefix):
            return tc
    return TOOLCHAINS["default"]


def firmware_plan(plan: Plan, part: Part) -> dict[str, Any]:
    """The firmware build plan as data (written to ``firmware.yaml``), from the part's device facts."""
    d = part.device
    device: dict[str, Any] = {"id": part.instance, "count": part.nodes, "name": d.name, "runtime": d.edge_runtime,
                              "int8_only": d.int8_only}
    flash_bytes = d.storage_bytes
    ram_bytes = d.memory_bytes or plan.predicted.memory_capacity_per_gpu_bytes
    weights = part.weights_bytes
    arena = plan.predicted.memory_per_gpu_bytes
    flash_budget = int(flash_bytes * (1 - FLASH_RESERVE)) if flash_bytes else None
    tc = toolchain(part.instance)
    steps = [
        "Quantise to full-integer int8 (weights and activations) with a representative dataset "
        "(TFLite converter: optimizations=DEFAULT, inference_input_type/output_type=int8).",
        f"Convert the .tflite model to C sources: {tc['converter']}.",
        f"Size the tensor arena to at least {arena} bytes and build the firmware: {tc['compiler']}.",
        "Run the on-target validation (accuracy vs. the float model on the test set; latency on one board).",
        f"Flash {part.nodes} devices: {tc['flasher']} (or your OTA service), staged: 1 board, 5 %, then all.",
    ]
    return {
        "iac": "none: this placement has no IaC (the model is compiled into the firmware image)",
        "model": {"name": plan.model.name, "params": plan.model.params, "dtype": part.dtype,
                  "weights_bytes": weights, "tensor_arena_bytes": arena,
                  "inputs": [t.model_dump(mode="json") for t in plan.model.inputs or ()],
                  "outputs": [t.model_dump(mode="json") for t in plan.model.outputs or ()]},
        "device": device,
        "fit": {"flash_bytes": flash_bytes, "flash_budget_bytes": flash_budget,
                "flash_fits": None if flash_budget is None else weights <= flash_budget,
                "ram_bytes": ram_bytes, "ram_fits": arena <= ram_bytes,
                "flash_reserve_for_application": FLASH_RESERVE},
        "int8_required": True,
        "toolchain": tc,
        "build_steps": steps,
        "predicted": {"latency_s": plan.predicted.latency_s, "throughput_rps": plan.predicted.throughput_rps},
    }


def _kib(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1024:,.1f} KiB"


def firmware_markdown(fw: dict[str, Any]) -> str:
    m, d, f, tc = fw["model"], fw["device"], fw["fit"], fw["toolchain"]
    ok = {True: "fits", False: "DOES NOT FIT", None: "unknown"}
    lines = [
        f"# Firmware build plan: {m['name']} on {d.get('name', d['id'])}",
        "",
        "**This placement has no IaC.** The model is compiled into the firmware image of each device; there is",
        "no cluster, container or cloud resource to create, so no `infra/` folder is generated.",
        "",
        "| | needed | device | verdict |",
        "|---|---:|---:|---|",
        f"| flash (weights, {m['dtype']}) | {_kib(m['weights_bytes'])} | {_kib(f['flash_budget_bytes'])} "
        f"(75 % of {_kib(f['flash_bytes'])}) | {ok[f['flash_fits']]} |",
        f"| RAM (tensor arena) | {_kib(m['tensor_arena_bytes'])} | {_kib(f['ram_bytes'])} | {ok[f['ram_fits']]} |",
        "",
        f"- int8 required: **yes** (full-integer quantisation; MCU kernels are int8). Devices: {d['count']}.",
        f"- Toolchain: **{tc['name']}**; compiler {tc['compiler']}; flashing {tc['flasher']}.",
        "",
        "## Build steps",
        "",
        *[f"{i}. {s}" for i, s in enumerate(fw["build_steps"], 1)],
        "",
    ]
    return "\n".join(lines)
