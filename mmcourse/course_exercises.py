"""The course's exercises, one ``notebook_NN()`` function per notebook.

Each notebook's exercises live in their own module, ``mmcourse/exercises/notebook_NN.py`` (after
learntools' ``exN.py`` files); this module re-exports them, so notebooks and graders keep
importing ``from mmcourse.course_exercises import notebook_NN``. Each function returns an
``ExerciseSet`` (see ``mmcourse.exercises``); ``tests/test_course_exercises.py`` checks every
exercise it finds here. A new notebook adds its module and one import line below.
"""

from mmcourse.exercises.notebook_00 import notebook_00 as notebook_00
from mmcourse.exercises.notebook_01 import notebook_01 as notebook_01
from mmcourse.exercises.notebook_02 import notebook_02 as notebook_02
from mmcourse.exercises.notebook_03 import notebook_03 as notebook_03
from mmcourse.exercises.notebook_04 import notebook_04 as notebook_04
from mmcourse.exercises.notebook_05 import notebook_05 as notebook_05
from mmcourse.exercises.notebook_06 import notebook_06 as notebook_06
from mmcourse.exercises.notebook_07 import notebook_07 as notebook_07
from mmcourse.exercises.notebook_08 import notebook_08 as notebook_08
from mmcourse.exercises.notebook_09 import notebook_09 as notebook_09
from mmcourse.exercises.notebook_10 import notebook_10 as notebook_10
from mmcourse.exercises.notebook_11 import notebook_11 as notebook_11
from mmcourse.exercises.notebook_12 import notebook_12 as notebook_12
from mmcourse.exercises.notebook_13 import notebook_13 as notebook_13
