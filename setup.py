"""The one packaging setting pyproject.toml cannot express next to automatic package discovery: the repository's
`recipes/` folder (one copy) is installed as the package `mmlabel.recipes`, so that wheels, sdists and editable
installs all carry the built-in recipes and experiment files (see `mmlabel.recipe_files`)."""
from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mmlabel*"]), "mmlabel.recipes", "mmlabel.recipes.experiments",
              "mmlabel.recipes.spaces"],
    package_dir={"mmlabel.recipes": "recipes"},
)
