"""Built-in recipes: shipped in the package, taken by name or path, listed by the CLI."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import yaml

from fasdistill.cli import main
from fasdistill.config import BUILTIN_RECIPES, builtin_recipe_names, load_recipe, resolve_recipe
from fasdistill.errors import InputError
from fasdistill.recipes import recipe_catalogue
from support import make_index

REPO = Path(__file__).resolve().parents[1]


def test_recipes_live_in_the_package_only_and_the_wheel_ships_them() -> None:
    tomllib = pytest.importorskip("tomllib")
    import fasdistill

    assert BUILTIN_RECIPES.parent == Path(fasdistill.__file__).resolve().parent
    assert not (REPO / "recipes").exists()  # one copy, not two
    data = [p for p in BUILTIN_RECIPES.iterdir() if p.is_file() and p.suffix != ".py"]
    assert {p.suffix for p in data} == {".yaml", ".json"} and len(data) > 20
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["fasdistill.recipes"]
    unshipped = [p.name for p in data if not any(fnmatch.fnmatch(p.name, g) for g in patterns)]
    assert not unshipped, f"not in the wheel: {unshipped}"


def test_a_name_or_a_path_gives_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = BUILTIN_RECIPES / "teacher_resnet18.yaml"
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("teacher_resnet18") == builtin
    assert resolve_recipe("teacher_resnet18.yaml") == builtin
    assert resolve_recipe(str(builtin)) == builtin
    assert load_recipe("teacher_resnet18").model.name == "resnet18"
    # A file that exists wins over the built-in of the same name.
    (tmp_path / "teacher_resnet18.yaml").write_text("name: mine\nmodel:\n  name: swapnet\n")
    assert resolve_recipe("teacher_resnet18.yaml") == Path("teacher_resnet18.yaml")
    assert load_recipe("teacher_resnet18.yaml").name == "mine"
    assert load_recipe("teacher_resnet18").name == "teacher_resnet18"  # no file of that name


@pytest.mark.parametrize("text", ["teacher_resnet81", "recipes/teacher_resnet18.yaml", "a.txt"])
def test_an_unknown_recipe_names_the_built_in_ones(text: str) -> None:
    with pytest.raises(InputError) as error:
        load_recipe(text)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{text}: ")
    assert all(name in message for name in builtin_recipe_names())


def test_the_catalogue_reads_role_and_description_from_each_recipe() -> None:
    rows = {info.name: info for info in recipe_catalogue()}
    assert sorted(rows) == builtin_recipe_names()
    assert rows["teacher_resnet18"].role == "teacher"
    assert rows["student_swapnet"].role == "student"
    assert rows["distill_kd"].role == "distill"  # a distill: section, whatever the model
    for info in rows.values():
        assert info.description and "\n" not in info.description, info.name
        assert len(info.description) <= 90, info.name


def test_description_is_a_recipe_key_and_typos_are_still_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("description: one line\nmodel:\n  name: swapnet\n")
    assert load_recipe(recipe).description == "one line"
    recipe.write_text("descripton: one line\n")
    with pytest.raises(InputError, match="unknown key 'descripton'"):
        load_recipe(recipe)


def test_recipes_command_lists_every_recipe_and_prints_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line.split()[1] for line in lines[1:] if line.strip()}
    assert set(builtin_recipe_names()) <= set(listed)
    assert listed["teacher_resnet18"] == "teacher" and listed["student_swapnet"] == "student"
    assert listed["distill_fitnet"] == "distill"
    assert main(["recipes", "distill_kd"]) == 0
    text = capsys.readouterr().out
    assert text == (BUILTIN_RECIPES / "distill_kd.yaml").read_text()
    assert yaml.safe_load(text)["distill"]["terms"][0]["kind"] == "kd"
    assert main(["recipes", "nonesuch"]) == 2
    assert "teacher_resnet18" in capsys.readouterr().err


def test_train_and_distill_take_recipe_names(tmp_path: Path) -> None:
    index = make_index(tmp_path / "toy", {"train": 8, "dev": 4, "test": 4})
    common = ["--data", str(index), "--no-progress", "train.epochs=1", "train.min_steps=null"]
    common.append("data.input_size=16")
    teacher = tmp_path / "teacher"
    assert main(["train", "--recipe", "smoke", "--out", str(teacher), *common]) == 0
    assert (teacher / "checkpoints" / "best.pt").exists()
    student = tmp_path / "student"
    distill = [
        "distill",
        "--recipe",
        "distill_kd",
        "--teacher",
        str(teacher / "checkpoints/best.pt"),
    ]
    assert main([*distill, "--out", str(student), *common, "model.name=smoke-cnn"]) == 0
    assert "name: distill_kd" in (student / "config.yaml").read_text()
