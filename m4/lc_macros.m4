# LC_CHECK_CFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
# Checks that the C compiler accepts FLAG (with warnings turned into errors,
# so that an unknown -W option is rejected instead of silently ignored).
AC_DEFUN([LC_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([lc_var], [lc_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [lc_var], [
    lc_check_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [[return 0;]])],
      [AS_VAR_SET([lc_var], [yes])], [AS_VAR_SET([lc_var], [no])])
    CFLAGS=$lc_check_save_CFLAGS])
  AS_VAR_IF([lc_var], [yes], [$2], [$3])
  AS_VAR_POPDEF([lc_var])
])
