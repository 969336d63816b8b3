"""Find, render and check the Jinja2 templates of mail that maildesk writes.

A template is ``<language>/<kind>.txt.j2`` (the text part, required) with an optional
``<language>/<kind>.html.j2`` (the HTML alternative), rendered from the same context.
Templates run in Jinja2's sandbox with StrictUndefined, so a template cannot reach
Python internals and an unknown variable is an error, never empty text. HTML templates
are autoescaped. :func:`check_templates` finds unknown variables before any mail is
written, which ``maildesk check-config`` uses.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from maildesk.config import LANGUAGES, Config

logger = logging.getLogger(__name__)

TEXT_SUFFIX = ".txt.j2"
HTML_SUFFIX = ".html.j2"
FALLBACK_LANGUAGE = "en"

_warned_missing_templates: set[tuple[Path, str, str]] = set()


@dataclass(frozen=True)
class RenderedTemplates:
    """The text and optional HTML of one mail, and the language of the templates used."""

    language: str
    text: str
    html: str | None


@dataclass(frozen=True)
class TemplateCheck:
    """The outcome of checking one template file."""

    # Path inside the templates folder, such as "fi/new_ticket.txt.j2".
    name: str
    # What is wrong, or None when the template rendered.
    problem: str | None = None
    # Whether the problem makes the configuration invalid; a missing optional template
    # only produces a note.
    fatal: bool = False


def find_templates_dir(config: Config) -> Path:
    """Return the folder that contains the ``<language>/*.j2`` templates.

    The order is ``[autoreply] templates`` when set, then ``maildesk/templates`` inside
    the installed package (the wheel build copies them there), then the repository's
    top-level ``templates/`` for an editable install. Raises FileNotFoundError when the
    chosen folder does not exist.
    """
    configured = config.autoreply.templates
    if configured is not None:
        if not configured.is_dir():
            raise FileNotFoundError(
                f"templates folder {configured} not found; fix autoreply.templates in "
                f"{config.path or 'the configuration'}"
            )
        return configured

    package_dir = Path(__file__).parent / "templates"
    repository_dir = Path(__file__).parents[1] / "templates"
    for candidate in (package_dir, repository_dir):
        if candidate.is_dir():
            return candidate

    raise FileNotFoundError(
        f"templates folder not found at {package_dir} or {repository_dir}; "
        "reinstall maildesk or set autoreply.templates"
    )


def primary_language(language: str) -> str | None:
    """Return the primary subtag of a language tag ("sv-FI" gives "sv"), or None if invalid.

    The tag may come from the customer's Content-Language header, so only letters pass
    into the template path.
    """
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]

    return primary if re.fullmatch(r"[a-z]{2,8}", primary) else None


def language_candidates(config: Config, language: str) -> list[str]:
    """Return the languages to try for a template: ``language``, the desk's, then English."""
    candidates: list[str] = []
    for tag in (primary_language(language), config.language, FALLBACK_LANGUAGE):
        if tag is not None and tag not in candidates:
            candidates.append(tag)

    return candidates


def resolve_language(config: Config, kind: str, language: str) -> str:
    """Return the first of :func:`language_candidates` that has the text template of ``kind``.

    Raises FileNotFoundError when none has it.
    """
    environment = template_environment(find_templates_dir(config))
    candidates = language_candidates(config, language)
    for tag in candidates:
        try:
            environment.get_template(f"{tag}/{kind}{TEXT_SUFFIX}")
        except jinja2.TemplateNotFound:
            _note_missing_template(config, tag, kind)
            continue
        return tag

    raise FileNotFoundError(
        f"template {kind}{TEXT_SUFFIX} not found for languages {', '.join(candidates)} "
        f"in {find_templates_dir(config)}"
    )


def render_templates(
    config: Config, kind: str, language: str, context: Mapping[str, Any]
) -> RenderedTemplates:
    """Render the text template of ``kind`` in ``language``, and its HTML one if it exists.

    Raises jinja2.TemplateNotFound when the text template is missing, and other
    jinja2.TemplateError subclasses (such as UndefinedError or SecurityError) when
    rendering fails.
    """
    environment = template_environment(find_templates_dir(config))
    text_template = environment.get_template(f"{language}/{kind}{TEXT_SUFFIX}")
    try:
        html_template = environment.get_template(f"{language}/{kind}{HTML_SUFFIX}")
    except jinja2.TemplateNotFound:
        html_template = None

    text = _ending_in_newline(text_template.render(context))
    html = _ending_in_newline(html_template.render(context)) if html_template else None
    return RenderedTemplates(language, text, html)


def check_templates(
    config: Config,
    samples: Mapping[str, Callable[[str], Mapping[str, Any]]],
    required: Collection[str] = (),
) -> list[TemplateCheck]:
    """Check every template of every kind in ``samples`` in every desk language.

    ``samples`` maps a template kind to a function that returns a sample context for a
    language. A template is checked twice: its source for variables that the context
    does not have (in every branch, taken or not), then by rendering it. A missing text
    template is fatal for the kinds in ``required`` in the desk's own language, and a
    note otherwise. Template files of kinds missing from ``samples`` get a note.
    """
    directory = find_templates_dir(config)
    environment = template_environment(directory)
    existing = set(environment.list_templates(extensions=["j2"]))
    checks: list[TemplateCheck] = []
    for kind, sample in samples.items():
        for language in LANGUAGES:
            context = sample(language)
            for suffix in (TEXT_SUFFIX, HTML_SUFFIX):
                name = f"{language}/{kind}{suffix}"
                if name in existing:
                    checks.append(_check_one(environment, name, context))
                elif suffix == TEXT_SUFFIX:
                    fatal = kind in required and language == config.language
                    checks.append(TemplateCheck(name, "missing", fatal=fatal))

    known = {f"{language}/{kind}{suffix}" for kind in samples for language in LANGUAGES
             for suffix in (TEXT_SUFFIX, HTML_SUFFIX)}
    for name in sorted(existing - known):
        checks.append(TemplateCheck(name, "not checked: no sample context for this template"))

    return checks


def _check_one(
    environment: SandboxedEnvironment, name: str, context: Mapping[str, Any]
) -> TemplateCheck:
    try:
        source, _filename, _uptodate = environment.loader.get_source(environment, name)  # type: ignore[union-attr]
        unknown = jinja2.meta.find_undeclared_variables(environment.parse(source)) - set(context)
        if unknown:
            names = ", ".join(sorted(unknown))
            return TemplateCheck(name, f"unknown variable(s): {names}", fatal=True)
        environment.get_template(name).render(context)
    except jinja2.TemplateError as error:
        return TemplateCheck(name, f"{type(error).__name__}: {error}", fatal=True)

    return TemplateCheck(name)


def _ending_in_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _note_missing_template(config: Config, language: str, kind: str) -> None:
    # A customer language without a template is normal. A missing template for the desk's
    # own language is an installation fault, logged once per folder and kind.
    if language != config.language:
        logger.debug("no %s%s template for language %s", kind, TEXT_SUFFIX, language)
        return
    key = (find_templates_dir(config), language, kind)
    if key not in _warned_missing_templates:
        _warned_missing_templates.add(key)
        logger.warning(
            "template %s/%s%s not found in %s; mail falls back to English",
            language, kind, TEXT_SUFFIX, key[0],
        )


@functools.lru_cache(maxsize=8)
def template_environment(directory: Path) -> SandboxedEnvironment:
    """Return the sandboxed environment for the templates in ``directory``.

    Autoescaping is on for HTML templates and off for plain-text ones. FileSystemLoader
    reloads a template whose file changed, so the cache does not hide edits.
    """
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "xml.j2"),
            default_for_string=False,
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
