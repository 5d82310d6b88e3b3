"""flowpolicy's Metaflow card template: ``@card(type="flowpolicy")``, the decision card of
every generated flow (what it shows is built by :mod:`flowpolicy.runtime.cards`).

It is Metaflow's blank card (the step's components, nothing else) with two differences:

- No live updates. A card that can be updated while its task runs makes Metaflow start a
  second process when the task ends, to write the card's final data; a decision card is drawn
  once, when the decision is made, so this one costs one process per run instead of two
  (``bench/flows.py`` measures it).
- No web font. Metaflow's card stylesheet imports Roboto from Google Fonts; without that
  import the page, whose script bundle (Vega included) is inlined, opens without the network
  and in the browser's own sans-serif.

Metaflow loads it when it starts (a card template is a ``metaflow_extensions`` package), so
it imports nothing of flowpolicy, which imports Metaflow.
"""

from metaflow.plugins.cards.card_modules.basic import BlankCard

#: The first rule of Metaflow's card stylesheet (2.19); should Metaflow change it, nothing is
#: removed and the card renders as before, with the font.
WEB_FONT_IMPORT = ('@import"https://fonts.googleapis.com/css2?family=Roboto:'
                   'wght@300;400;500;700&display=swap";')


class DecisionCard(BlankCard):
    """The components a step appended, rendered once when the task ends."""

    type = "flowpolicy"
    RUNTIME_UPDATABLE = False

    def render(self, task, *args, **kwargs):
        return super().render(task, *args, **kwargs).replace(WEB_FONT_IMPORT, "", 1)


CARDS = [DecisionCard]
