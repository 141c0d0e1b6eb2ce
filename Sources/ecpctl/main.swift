print("ecpctl")
