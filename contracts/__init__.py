"""The typed inputs, results and progress that cross the workflow and activity boundaries."""
