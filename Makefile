# Both targets set up a local virtual environment on first use, so a fresh
# clone needs nothing but python3 with venv.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench translations clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[demo,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/maildesk demo

test: $(STAMP)
	$(PYTHON) -m pytest

bench: $(STAMP)
	$(PYTHON) -m benchmarks.run

# Extract the translatable strings and merge them into the catalogs.
translations: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ -o maildesk/locale/maildesk.pot --no-location --sort-output maildesk
	for lang in fi sv; do \
		$(VENV)/bin/pybabel update -i maildesk/locale/maildesk.pot -d maildesk/locale -D maildesk -l $$lang --ignore-obsolete --no-fuzzy-matching; \
	done

clean:
	rm -rf $(VENV) .pytest_cache build dist
