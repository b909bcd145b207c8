from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "telegraphy_testapp"
    label = "testapp"
