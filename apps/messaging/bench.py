"""The secure-messaging benchmark (`manage.py bench_messaging`): the population.

Seeds, under an organisation of its own ("Bench messaging"), a clinic's worth of conversations
in a realistic shape: `patients` patients with portal accounts, `clinicians` clinicians grouped
in practices of five (each patient's care team is 2 to 4 clinicians of one practice, the
practice's lead always among them, with the guardian grants the care-team service would give),
`threads` conversations spread over the patients with a long tail (a few patients write a lot),
and `messages` messages spread over the threads with a long tail too (most conversations are a
question and its answer, a few chronic ones run to hundreds). About one in twenty is a staff-only
case discussion with mentions; wound-photo conversations carry photos and some messages PDFs
(rows pointing at two real files stored once through the records app's `store_file`); patient
messages outside opening hours are followed by the automatic reply; old conversations are mostly
resolved, recent ones open, assigned or not, some urgent; each participant has a read marker.

Subjects and bodies are encrypted one by one as the application would (`EncryptedTextField`),
so the build time includes the encryption. Messages go in with PostgreSQL's COPY under ids
reserved up front (so attachments and mentions can point at them), other rows with
`bulk_create`. The command module picks whom to measure, measures, and cleans up.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.core import crypto
from apps.records.models import CareTeam, CareTeamMember, Patient, PatientUserObjectPermission
from apps.records.services.documents import StoredFile, store_file

from .models import PATIENT_TOPICS, STAFF_TOPICS, Attachment, Message, Participant, Thread, Topic
from .services import hours

Progress = Callable[[str], None]
T = TypeVar("T")

ORGANIZATION_NAME = "Bench messaging"
EMAIL_PREFIX = "bench-msg-"
BATCH = 2000
SPAN_DAYS = 365
PRACTICE_SIZE = 5
# A practice: its lead physician, then a physician, nurses and an allied professional.
PRACTICE_ROLES = [Role.PHYSICIAN, Role.NURSE, Role.PHYSICIAN, Role.NURSE, Role.ALLIED]

# Synthetic French texts (the clinic's language); one line each, "|" between choices.
SUBJECTS = {
    topic: line.split(" | ")
    for topic, line in zip(
        Topic.values,
        """Question sur mon traitement | Horaire des comprimés | Résultats du labo
Essoufflement | Douleurs au genou | Vertiges le matin | Fièvre depuis hier
Photo de la plaie | Cicatrice rouge | Pansement du pied
Renouvellement ordonnance | Plus de comprimés | Inhalateur
Certificat de travail | Facture | Changement d'adresse
Adaptation du traitement | Résultats à discuter | Avis cardiologique
Transmission du week-end | Suivi à domicile | Passation""".splitlines(),
        strict=True,
    )
}
PATIENT_SENTENCES = """Bonjour, j'ai une question au sujet de mon traitement.
Depuis deux jours je me sens plus fatiguée que d'habitude.
La tension ce matin était à 142/88, est-ce normal ?
Je vous envoie une photo de la plaie, elle me semble plus rouge.
Merci beaucoup pour votre réponse rapide.
Est-ce que je peux prendre le comprimé le soir plutôt que le matin ?
Il me reste des comprimés pour une semaine environ.
La douleur est moins forte depuis hier soir.
Je serai absente la semaine prochaine, faut-il décaler le contrôle ?""".splitlines()
TEAM_SENTENCES = """Bonjour, merci pour votre message.
Vous pouvez prendre le comprimé le soir, cela ne change rien à son effet.
La plaie cicatrise bien, continuez les soins comme indiqué.
Pouvez-vous mesurer votre tension matin et soir pendant une semaine ?
L'ordonnance est prête, vous pouvez la retirer à la pharmacie.
Si la fièvre dépasse 38,5 °C, appelez-nous ou consultez.
Nous en parlons au prochain rendez-vous.
Bonne journée.""".splitlines()
STAFF_SENTENCES = """Je propose d'augmenter la dose, qu'en penses-tu ?
Vu ce matin, les œdèmes ont diminué.
Peux-tu regarder les derniers résultats du labo ?
Visite à domicile prévue jeudi, je transmets au service.
D'accord, on réévalue dans une semaine.""".splitlines()
AUTOMATIC_REPLY = (
    "Merci pour votre message. L'équipe de soins lit les messages pendant les heures "
    "d'ouverture et vous répondra dès que possible. En cas d'urgence, appelez le 144."
)


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Options:
    messages: int = 100_000
    threads: int = 0  # 0: one conversation per ten messages
    patients: int = 2000
    clinicians: int = 40
    requests: int = 50
    seed: int = 8
    keep: bool = False
    # Run even though the database holds patients that are not the benchmark's.
    yes: bool = False

    @property
    def thread_count(self) -> int:
        return self.threads or max(1, self.messages // 10)


@dataclass
class PlannedMessage:
    sent_at: dt.datetime
    author_id: int | None  # None: the automatic reply
    by_patient: bool
    body: str
    mentions: list[int] = field(default_factory=list)
    files: int = 0  # 1: a photo, 2: a PDF, 3: a photo and a PDF


@dataclass
class PlannedThread:
    patient: int  # index into Seeded.patients
    topic: str
    team: list[int]  # user ids of the patient's care team
    messages: list[PlannedMessage] = field(default_factory=list)


@dataclass
class Seeded:
    """What was made: the people, the conversations (their plans, in the same order), the two
    stored files, the sizes and the build times."""

    organization: Organization
    patients: list[Patient] = field(default_factory=list)  # user attached
    clinicians: list[User] = field(default_factory=list)
    thread_ids: list[int] = field(default_factory=list)
    plans: list[PlannedThread] = field(default_factory=list)
    stored: list[StoredFile] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# People and care teams


def _users(organization: Organization, tag: str, roles: Sequence[str]) -> list[User]:
    password = make_password(None)
    users = [
        User(
            email=f"{EMAIL_PREFIX}{tag}-{'p' if role == Role.PATIENT else 'c'}{i}@bench.invalid",
            first_name="Bench",
            last_name=f"{'Patient' if role == Role.PATIENT else 'Clinician'} {i}",
            role=role,
            organization=None if role == Role.PATIENT else organization,
            password=password,
        )
        for i, role in enumerate(roles)
    ]
    made: list[User] = []
    for batch in batches(users):
        made += User.objects.bulk_create(batch)
    return made


def _seed_people(seeded: Seeded, options: Options, rng: random.Random, progress: Progress) -> None:
    organization = seeded.organization
    tag = secrets.token_hex(4)
    portal = _users(organization, tag, [Role.PATIENT] * options.patients)
    roles = [PRACTICE_ROLES[i % PRACTICE_SIZE] for i in range(options.clinicians)]
    seeded.clinicians = _users(organization, tag, roles)
    records = [
        Patient(
            user=user,
            organization=organization,
            family_name=f"Bench-{i}",
            given_names=("Anna", "Luc", "Sofia", "Marc", "Léa", "Noah")[i % 6],
            birth_date=dt.date(1930, 1, 1) + dt.timedelta(days=(i * 37) % 30_000),
            sex=("female", "male")[i % 2],
        )
        for i, user in enumerate(portal)
    ]
    for batch in batches(records):
        seeded.patients += Patient.objects.bulk_create(batch)
    for patient, user in zip(seeded.patients, portal, strict=True):
        patient.user = user
    progress(f"{len(portal)} patients and {len(seeded.clinicians)} clinicians")


def _practices(options: Options) -> list[list[int]]:
    """Clinician indexes per practice; the last clinician is kept out (the small inbox)."""
    staff = list(range(options.clinicians - 1))
    return [staff[i : i + PRACTICE_SIZE] for i in range(0, len(staff), PRACTICE_SIZE)]


def _seed_care_teams(seeded: Seeded, options: Options, rng: random.Random) -> list[list[int]]:
    """Each patient's care team (user ids, the lead first), with the access grants."""
    practices = _practices(options)
    clinicians = seeded.clinicians
    teams: list[list[int]] = []
    for i in range(len(seeded.patients)):
        members = practices[i % len(practices)]
        size = min(len(members), rng.choice([2, 3, 3, 4]))
        chosen = [members[0], *rng.sample(members[1:], max(0, size - 1))]
        teams.append([clinicians[c].pk for c in chosen])
    _grant(seeded, teams)
    return teams


def _grant(seeded: Seeded, teams: list[list[int]]) -> None:
    """Care teams, memberships and grants as `care_team.do_add_member` makes them, in bulk."""
    care_teams = CareTeam.objects.bulk_create(
        [
            CareTeam(
                patient=patient, name=f"Équipe — {patient.pk}", organization=seeded.organization
            )
            for patient in seeded.patients
        ],
        batch_size=BATCH,
    )
    roles = {user.pk: user.role for user in seeded.clinicians}
    permission = Permission.objects.get(content_type__app_label="records", codename="access_record")
    members, grants = [], []
    for team, care_team, patient in zip(teams, care_teams, seeded.patients, strict=True):
        for position, user_id in enumerate(team):
            members.append(
                CareTeamMember(
                    care_team=care_team,
                    user_id=user_id,
                    role=roles[user_id],
                    is_lead=position == 0,
                )
            )
            grants.append(
                PatientUserObjectPermission(
                    permission=permission, user_id=user_id, content_object=patient
                )
            )
    CareTeamMember.objects.bulk_create(members, batch_size=BATCH)
    PatientUserObjectPermission.objects.bulk_create(grants, batch_size=BATCH)


# ---------------------------------------------------------------------------------------------
# The conversations, planned in memory


def _long_tail(rng: random.Random, count: int, total: int, alpha: float) -> list[int]:
    """`count` integers of at least 1 adding up to `total`, Pareto-distributed."""
    # Lomax (Pareto shifted to 0): most near the minimum, a few very large.
    weights = [rng.paretovariate(alpha) - 1 for _ in range(count)]
    spare = total - count
    scale = spare / (sum(weights) or 1)
    shares = [w * scale for w in weights]
    sizes = [1 + int(share) for share in shares]
    missing = total - sum(sizes)
    by_fraction = sorted(range(count), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in by_fraction[:missing]:
        sizes[i] += 1
    return sizes


def _body(rng: random.Random, sentences: list[str]) -> str:
    return " ".join(rng.sample(sentences, rng.randint(1, min(4, len(sentences)))))


def _when(at: dt.datetime, by_patient: bool, rng: random.Random) -> dt.datetime:
    """Patients write between 7:00 and 23:00; the team answers during opening hours."""
    if not by_patient:
        opening = hours.next_opening(at)
        return at if opening == at else opening + dt.timedelta(minutes=rng.uniform(0, 120))
    local = timezone.localtime(at)
    if 7 <= local.hour < 23:
        return at
    morning = local.replace(hour=7, minute=0) + dt.timedelta(days=local.hour >= 23)
    return morning + dt.timedelta(minutes=rng.uniform(0, 120))


def _plan_messages(
    plan: PlannedThread, size: int, patient_user: int, now: dt.datetime, rng: random.Random
) -> None:
    staff_only = plan.topic in STAFF_TOPICS
    # Most conversations are recent-ish; long ones started long ago.
    span = dt.timedelta(days=SPAN_DAYS)
    start = now - span * rng.random() ** (1.5 if size < 20 else 0.3)
    gaps = [dt.timedelta(minutes=rng.expovariate(1 / 480)) for _ in range(size)]
    room = now - dt.timedelta(minutes=5) - start
    used = sum(gaps, dt.timedelta())
    if used > room:
        gaps = [gap * (room / used) for gap in gaps]
    handlers = plan.team[: rng.choice([1, 2])] if not staff_only else plan.team
    at = start
    by_patient = not staff_only
    automatic_due = False
    for n in range(size):
        if automatic_due:
            # Right after the patient's message, as the service sends it.
            automatic_due = False
            at += dt.timedelta(microseconds=1)
            plan.messages.append(PlannedMessage(at, None, False, AUTOMATIC_REPLY))
            continue
        if n and not staff_only and rng.random() < 0.7:
            by_patient = not by_patient
        # In order, and in the past (a second per message still to come).
        latest = now - dt.timedelta(seconds=size - n)
        wanted = _when(at + gaps[n] if n else at, by_patient, rng)
        at = max(min(wanted, latest), at + dt.timedelta(microseconds=2))
        if by_patient:
            previous = plan.messages[-1] if plan.messages else None
            awaiting = previous is not None and (previous.by_patient or previous.author_id is None)
            automatic_due = not awaiting and not hours.is_open(at)
            files = 1 if plan.topic == Topic.WOUND and n == 0 else int(rng.random() < 0.02) * 2
            plan.messages.append(
                PlannedMessage(at, patient_user, True, _body(rng, PATIENT_SENTENCES), files=files)
            )
            continue
        author = rng.choice(handlers)
        mentions = []
        if staff_only and rng.random() < 0.2:
            others = [pk for pk in plan.team if pk != author]
            mentions = [rng.choice(others)] if others else []
        sentences = STAFF_SENTENCES if staff_only else TEAM_SENTENCES
        files = int(rng.random() < 0.01) * 2
        plan.messages.append(
            PlannedMessage(at, author, False, _body(rng, sentences), mentions, files)
        )


def _plan(seeded: Seeded, options: Options, teams: list[list[int]], rng: random.Random) -> None:
    count = options.thread_count
    sizes = sorted(_long_tail(rng, count, options.messages, 1.8), reverse=True)
    # Who writes: a long tail too; patient 0 (practice 0) writes the most, and has the longest.
    weights = [rng.paretovariate(2.0) for _ in seeded.patients]
    weights[0] = max(weights)
    owners = rng.choices(range(len(seeded.patients)), weights=weights, k=count)
    owners[0] = 0
    now = timezone.now()
    for i, (size, owner) in enumerate(zip(sizes, owners, strict=True)):
        staff_only = i > 0 and rng.random() < 0.05
        topics = STAFF_TOPICS if staff_only else PATIENT_TOPICS
        topic = rng.choice(topics) if i else Topic.SYMPTOM
        plan = PlannedThread(owner, topic, teams[owner])
        patient_user = seeded.patients[owner].user_id
        _plan_messages(plan, size, patient_user or 0, now, rng)
        seeded.plans.append(plan)


# ---------------------------------------------------------------------------------------------
# The conversations, written


def _thread_row(
    plan: PlannedThread, now: dt.datetime, rng: random.Random, patient: Patient
) -> Thread:
    staff_only = plan.topic in STAFF_TOPICS
    first, last = plan.messages[0], plan.messages[-1]
    last_human = next(m for m in reversed(plan.messages) if m.author_id is not None)
    age = now - last.sent_at
    resolved = rng.random() < (0.9 if age > dt.timedelta(days=14) else 0.25)
    if last_human.by_patient and age < dt.timedelta(days=14):
        resolved = resolved and rng.random() < 0.2
    staff_authors = [m.author_id for m in plan.messages if not m.by_patient and m.author_id]
    assignee = None
    if rng.random() < (0.8 if resolved else 0.5):
        assignee = staff_authors[-1] if staff_authors else rng.choice(plan.team)
    awaiting = not resolved and last_human.by_patient
    due = None
    if awaiting:
        burst = len(plan.messages) - 1
        while burst > 0 and (
            plan.messages[burst - 1].by_patient or plan.messages[burst - 1].author_id is None
        ):
            burst -= 1
        due = hours.response_due(plan.messages[burst].sent_at)
    resolved_at = min(last.sent_at + dt.timedelta(hours=2), now) if resolved else None
    if first.author_id is None:
        raise BenchError("a conversation cannot start with an automatic reply")
    return Thread(
        patient=patient,
        topic=plan.topic,
        subject=rng.choice(SUBJECTS[plan.topic]),
        staff_only=staff_only,
        state=Thread.State.RESOLVED if resolved else Thread.State.OPEN,
        urgency=Thread.Urgency.URGENT
        if rng.random() < (0.12 if plan.topic == Topic.SYMPTOM else 0.03)
        else Thread.Urgency.ROUTINE,
        assignee_id=assignee,
        created_by_id=first.author_id,
        created_at=first.sent_at,
        last_message_at=last.sent_at,
        last_message_by_patient=last_human.by_patient,
        message_count=len(plan.messages),
        response_due_at=due,
        resolved_at=resolved_at,
        resolved_by_id=(assignee or plan.team[0]) if resolved else None,
    )


def _participants(plan: PlannedThread, thread: Thread, rng: random.Random) -> list[Participant]:
    """Everyone who wrote, was assigned or mentioned, with a plausible read marker."""
    last_own: dict[int, dt.datetime] = {}
    for message in plan.messages:
        if message.author_id is not None:
            last_own[message.author_id] = message.sent_at
        for user_id in message.mentions:
            last_own.setdefault(user_id, message.sent_at - dt.timedelta(days=1))
    if thread.assignee_id is not None:
        last_own.setdefault(thread.assignee_id, plan.messages[0].sent_at - dt.timedelta(days=1))
    rows = []
    for user_id, own in last_own.items():
        if thread.state == Thread.State.RESOLVED or rng.random() < 0.6:
            read_at: dt.datetime | None = thread.last_message_at
        elif own >= plan.messages[0].sent_at:
            read_at = own
        else:
            read_at = None
        rows.append(
            Participant(
                thread_id=thread.pk,
                user_id=user_id,
                joined_at=min(own, plan.messages[0].sent_at),
                last_read_at=read_at,
            )
        )
    return rows


def _reserve_ids(model: type[Any], count: int) -> int:
    """The first of `count` consecutive primary keys nobody else will be given."""
    table = model._meta.db_table
    top_sql = f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(top_sql)
        top = int(cursor.fetchone()[0])
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s)", [sequence])
            first = max(int(cursor.fetchone()[0]), top + 1)
            cursor.execute("SELECT setval(%s, %s)", [sequence, first + count])
            return first
        return top + 1


_MESSAGE_COLUMNS = tuple(
    "id fhir_id version updated_at thread_id patient_id author_id automatic sent_at body".split()
)


def _write_messages(rows: list[tuple[Any, ...]], progress: Progress) -> None:
    if connection.vendor != "postgresql":
        for batch in batches(rows):
            Message.objects.bulk_create(
                [Message(**dict(zip(_MESSAGE_COLUMNS, row, strict=True))) for row in batch]
            )
        return
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: COPY is not part of the DB-API
        with raw.copy(f"COPY {table} ({', '.join(_MESSAGE_COLUMNS)}) FROM STDIN") as copy:
            for n, row in enumerate(rows, 1):
                copy.write_row(row)
                if n % 50_000 == 0:
                    progress(f"{n}/{len(rows)} messages copied")


def _stored_files() -> list[StoredFile]:
    """A phone photo and a PDF, through the real checks, cleaning and encryption, once."""
    from PIL import Image
    from pypdf import PdfWriter

    picture = io.BytesIO()
    Image.new("RGB", (640, 480), (190, 120, 110)).save(picture, "JPEG", quality=80)
    pdf = io.BytesIO()
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.write(pdf)
    return [store_file(picture.getvalue(), "plaie.jpg"), store_file(pdf.getvalue(), "labo.pdf")]


def _seed_threads(seeded: Seeded, rng: random.Random, progress: Progress) -> None:
    now = timezone.now()
    timer = time.perf_counter()
    threads = [_thread_row(plan, now, rng, seeded.patients[plan.patient]) for plan in seeded.plans]
    made: list[Thread] = []
    for batch in batches(threads):
        made += Thread.objects.bulk_create(batch)
    seeded.thread_ids = [thread.pk for thread in made]
    seeded.seconds["threads"] = round(time.perf_counter() - timer, 2)
    progress(f"{len(made)} conversations ({seeded.seconds['threads']} s)")

    timer = time.perf_counter()
    total = sum(len(plan.messages) for plan in seeded.plans)
    next_id = _reserve_ids(Message, total)
    seeded.stored = _stored_files()
    photo, pdf = seeded.stored
    rows: list[tuple[Any, ...]] = []
    attachments: list[Attachment] = []
    mentions = []
    participants: list[Participant] = []
    for plan, thread in zip(seeded.plans, made, strict=True):
        for message in plan.messages:
            pk = next_id
            next_id += 1
            rows.append(
                (
                    pk,
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    1,
                    message.sent_at,
                    thread.pk,
                    thread.patient_id,
                    message.author_id,
                    message.author_id is None,
                    message.sent_at,
                    crypto.seal(message.body.encode()),
                )
            )
            for stored, bit in ((photo, 1), (pdf, 2)):
                if message.files & bit:
                    fields = stored.fields()
                    stem, dot, extension = fields["filename"].rpartition(".")
                    fields["filename"] = f"{stem}-{pk}{dot}{extension}"
                    attachments.append(Attachment(message_id=pk, **fields))
            mentions += [
                Message.mentions.through(message_id=pk, user_id=user_id)
                for user_id in message.mentions
            ]
        participants += _participants(plan, thread, rng)
    seeded.seconds["encrypt_messages"] = round(time.perf_counter() - timer, 2)
    progress(f"{total} messages encrypted ({seeded.seconds['encrypt_messages']} s)")
    timer = time.perf_counter()
    _write_messages(rows, progress)
    seeded.seconds["write_messages"] = round(time.perf_counter() - timer, 2)
    timer = time.perf_counter()
    Attachment.objects.bulk_create(attachments, batch_size=BATCH)
    Message.mentions.through.objects.bulk_create(mentions, batch_size=BATCH)
    Participant.objects.bulk_create(participants, batch_size=BATCH)
    seeded.seconds["other_rows"] = round(time.perf_counter() - timer, 2)
    seeded.counts = {
        "patients": len(seeded.patients),
        "clinicians": len(seeded.clinicians),
        "threads": len(made),
        "staff_only_threads": sum(thread.staff_only for thread in made),
        "open_threads": sum(thread.state == Thread.State.OPEN for thread in made),
        "urgent_threads": sum(thread.urgency == Thread.Urgency.URGENT for thread in made),
        "messages": total,
        "automatic_replies": sum(row[6] is None for row in rows),
        "attachments": len(attachments),
        "mentions": len(mentions),
        "participants": len(participants),
        "largest_thread": max(len(plan.messages) for plan in seeded.plans),
    }


def _analyze() -> None:
    if connection.vendor != "postgresql":
        return
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    models = (Thread, Message, Participant, Attachment, Patient, PatientUserObjectPermission)
    with connection.cursor() as cursor:
        for model in (*models, CareTeamMember, Message.mentions.through):
            cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")


def seed(options: Options, progress: Progress) -> Seeded:
    rng = random.Random(options.seed)  # noqa: S311 - benchmark data, not secrets
    started = time.perf_counter()
    seeded = Seeded(Organization.objects.create(name=ORGANIZATION_NAME))
    _seed_people(seeded, options, rng, progress)
    teams = _seed_care_teams(seeded, options, rng)
    seeded.seconds["people_and_teams"] = round(time.perf_counter() - started, 2)
    timer = time.perf_counter()
    _plan(seeded, options, teams, rng)
    seeded.seconds["plan"] = round(time.perf_counter() - timer, 2)
    _seed_threads(seeded, rng, progress)
    timer = time.perf_counter()
    _analyze()
    seeded.seconds["analyze"] = round(time.perf_counter() - timer, 2)
    seeded.seconds["total"] = round(time.perf_counter() - started, 2)
    return seeded
