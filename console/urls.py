from django.contrib.auth import views as auth_views
from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("workspace/switch/", views.switch_workspace, name="switch-workspace"),
    path("settings/api-keys/", views.api_keys, name="api-keys"),
    path("settings/api-keys/<int:pk>/revoke/", views.revoke_api_key, name="revoke-api-key"),
    path("settings/authorizations/", views.authorizations, name="authorizations"),
    path("settings/authorizations/<int:pk>/", views.authorization_edit, name="authorization-edit"),
]
