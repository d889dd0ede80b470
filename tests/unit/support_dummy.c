/* keeps the support library non-empty */
int custos_test_support_dummy_(void);
int custos_test_support_dummy_(void)
{
    return 0;
}
