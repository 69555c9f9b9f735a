"""Video consultations: rooms and who may enter them, guests, consent, recordings, the call's
end (closing the Encounter). Views, the signalling consumer and tasks call these functions."""


class ConsultError(Exception):
    """A refused action, with a message for the person who tried it."""
