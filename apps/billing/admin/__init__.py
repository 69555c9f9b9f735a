"""Administration of billing: administrators maintain the tariff catalogue (tariffs, codes and
their rules, point values) and the insurers, the organisations' billing profiles and patients'
coverages (`catalogue`). Every entry is checked as the product needs it (a points code has tax
points, a GLN or an IBAN has a valid check digit, validity periods of one thing do not overlap).

Invoices, credit notes, payments, claims and charge items are shown read-only (`produced`): an
issued invoice is never edited or deleted (a credit note corrects it, on the billing pages),
and no PDF is shown here. Opening a page about a patient's billing is audited.
"""

from . import catalogue, produced

__all__ = ["catalogue", "produced"]
