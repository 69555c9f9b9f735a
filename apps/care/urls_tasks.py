"""Care coordination pages: tasks (my tasks, a task and its actions, the chart's tab), and the
fragments their live updates fetch."""

from django.urls import URLPattern, path

from . import views_tasks as views

urlpatterns: list[URLPattern] = [
    path("clinic/tasks/", views.my_tasks, name="my_tasks"),
    path("clinic/tasks/tabs/", views.my_tasks_tabs, name="my_tasks_tabs"),
    path("clinic/tasks/<int:pk>/", views.task_page, name="task"),
    path("clinic/tasks/<int:pk>/row/", views.task_row, name="task_row"),
    path("clinic/tasks/<int:pk>/live/", views.task_live, name="task_live"),
    path("clinic/tasks/<int:pk>/assign/", views.task_assign, name="task_assign"),
    path("clinic/tasks/<int:pk>/start/", views.task_start, name="task_start"),
    path("clinic/tasks/<int:pk>/hold/", views.task_hold, name="task_hold"),
    path("clinic/tasks/<int:pk>/complete/", views.task_complete, name="task_complete"),
    path("clinic/tasks/<int:pk>/cancel/", views.task_cancel, name="task_cancel"),
    path("clinic/tasks/<int:pk>/notes/", views.task_note, name="task_note"),
    path("clinic/patients/<int:patient_pk>/tasks/", views.patient_tasks, name="patient_tasks"),
    path(
        "clinic/patients/<int:patient_pk>/tasks/tabs/",
        views.patient_tasks_tabs,
        name="patient_tasks_tabs",
    ),
    path(
        "clinic/patients/<int:patient_pk>/tasks/new/",
        views.patient_task_new,
        name="patient_task_new",
    ),
]
